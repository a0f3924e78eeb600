// Every activation's math, for the op layer (csrc/activation_ops.h) and the
// drivers.
#pragma once

#include "elu.h"
#include "gelu.h"
#include "prelu.h"
#include "relu_family.h"
#include "sigmoid_family.h"
#include "softmax.h"
