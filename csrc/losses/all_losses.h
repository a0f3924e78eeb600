// Every row loss, as X(op_name, LossStruct). The schemas (ops/schemas.cpp)
// and both backends' kernel registrations (cpu/row_losses.cpp,
// cuda/row_losses.cu) expand this list, so a new loss is its header plus one
// line here.
#pragma once

#include "alpha_loss.h"
#include "cauchy_schwarz.h"
#include "chebyshev.h"
#include "cross_entropy.h"
#include "cross_entropy_probabilities.h"
#include "expectation.h"
#include "hinge.h"
#include "l1.h"
#include "l2.h"
#include "logistic.h"
#include "regularized_expectation.h"
#include "squared_log.h"
#include "tanimoto.h"
#include "two_scale_cross_entropy.h"

#define LOSSEXT_FOR_EACH_ROW_LOSS(X)                                     \
  X(cross_entropy, ::lossext::CrossEntropy)                              \
  X(cross_entropy_probabilities, ::lossext::CrossEntropyProbabilities)   \
  X(hinge, ::lossext::Hinge)                                             \
  X(l1, ::lossext::L1)                                                   \
  X(l2, ::lossext::L2)                                                   \
  X(expectation, ::lossext::Expectation)                                 \
  X(regularized_expectation, ::lossext::RegularizedExpectation)          \
  X(chebyshev, ::lossext::Chebyshev)                                     \
  X(squared_log, ::lossext::SquaredLog)                                  \
  X(tanimoto, ::lossext::Tanimoto)                                       \
  X(cauchy_schwarz, ::lossext::CauchySchwarz)                            \
  X(alpha_loss, ::lossext::AlphaLoss)                                    \
  X(two_scale_cross_entropy, ::lossext::TwoScaleCrossEntropy)          \
  X(logistic, ::lossext::Logistic)
