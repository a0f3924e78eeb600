// Every row loss, as X(op_name, LossStruct). The schemas (registration.cpp)
// and both backends' kernel registrations (cpu/row_losses.cpp,
// cuda/row_losses.cu) expand this list, so a new loss is its header plus one
// line here.
#pragma once

#include "cross_entropy.h"
#include "cross_entropy_probabilities.h"
#include "two_scale_cross_entropy.h"

#define LOSSEXT_FOR_EACH_ROW_LOSS(X)                         \
  X(cross_entropy, ::lossext::CrossEntropy)                  \
  X(cross_entropy_probabilities, ::lossext::CrossEntropyProbabilities) \
  X(two_scale_cross_entropy, ::lossext::TwoScaleCrossEntropy)
