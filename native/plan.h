// Compiled inference plans: a whole network, prepared once for one input shape and batch.
//
// TypeScript (src/infer/) walks the model, folds batch normalization into the convolutions and
// decides the fusions; it sends here a flat list of numbers (the spec, format below) and the
// folded weights as Float32Arrays. This file builds the oneDNN primitives once, lets them choose
// their activation layouts (format `any`: channels-last or blocked nChw16c), reorders the weights once,
// lays every intermediate activation out in one arena by liveness, and then runs the steps.
// Nothing in the spec is trusted: every index, size and geometry is checked before use.
//
// Spec (all numbers; value 0 is the input, step i defines value i + 1). The codes and field
// orders are the enums below; src/infer/plan-format.ts is TypeScript's copy (a test checks that
// the two agree):
//   header (HeaderField order): formatVersion, batch, height, width, channels, precision (Precision),
//           layout (0 oneDNN's choice, 1 blocked: see Builder::choose), stepCount, outputValue
//   int8 plans only: the value table, for each value 0 … stepCount (ValueQuantField order): scale (0: the
//           value stays fp32, else real = scale · q), unsigned (1: uint8 [0, 255], 0: int8)
//   steps, each a kind (Op) followed by its fields:
//     Conv:    in, geometry (ConvField order), weightIndex, biasIndex (−1: none), sumValue (−1: none),
//              [int8 plans only: weightScalesIndex (−1: this convolution runs fp32)],
//              postCount, postCount × (PostKind, algorithm, alpha)
//              An int8 convolution (or dense) reads its input quantized (u8/s8), its kernel per output
//              channel (weight array weightScalesIndex: outC scales, real = scale[c] · q), adds the
//              fp32 bias and its post-ops in real numbers, and writes its value quantized; a sum
//              value must be quantized too.
//   Int8 plans: a value with a scale is stored quantized (a step computed in fp32 is followed by a
//   quantizing reorder); steps other than int8 convolutions, dense steps and max pools (whose value has its
//   input's scale) read their inputs dequantized. Weights are not re-read (setPlanWeights refuses).
//     Eltwise: in, algorithm (EltwiseAlg), alpha
//     Pool:    in, algorithm (PoolAlg; average excludes padding), window (PoolField order)
//     GlobalPool: in, algorithm (PoolAlg)
//     Add:     count, count × in
//     Concat (channels): count, count × in
//     Dense:   in, units, weightIndex, biasIndex (−1: none), [int8 plans only: weightScalesIndex],
//              postCount, postCount × (Eltwise, alg, alpha)
//     Softmax: in (a [batch, features] value)
//     BatchNorm (moving statistics): in, epsilon, gammaIndex, betaIndex, meanIndex, varianceIndex
//   post-ops: (Eltwise, EltwiseAlg, alpha) or (Sum, 0, 0). A sum post-op makes the step write into
//   sumValue's memory, adding to it (sumValue must be dead after this step and not the input);
//   its value then aliases that memory.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common.h"

namespace xnative {

constexpr int64_t kPlanFormatVersion = 2;

enum class HeaderField { formatVersion, batch, height, width, channels, precision, layout, stepCount, outputValue };

enum class Precision { Fp32 = 0, Bf16 = 1, Int8 = 2 };

// An int8 plan's value-table entry, in spec order.
enum class ValueQuantField { scale, unsigned_, count };

enum class Op { Conv = 1, Eltwise = 2, Pool = 3, GlobalPool = 4, Add = 5, Concat = 6, Dense = 7, Softmax = 8, BatchNorm = 9 };

enum class PostKind { Eltwise = 1, Sum = 2 };

enum class EltwiseAlg { Relu = 1, Elu = 2 };

enum class PoolAlg { Max = 1, Avg = 2 };

// A convolution's geometry fields, in spec order (names as in kConvFieldNames).
enum class ConvField { inH, inW, inC, outH, outW, outC, kH, kW, sH, sW, dH, dW, padT, padL, padB, padR, groups, count };
inline constexpr const char* kConvFieldNames[] = {"inH", "inW", "inC", "outH", "outW", "outC", "kH", "kW", "sH",
                                                  "sW",  "dH",  "dW",  "padT", "padL", "padB", "padR", "groups"};

// A pooling window's fields, in spec order.
enum class PoolField { winH, winW, sH, sW, padT, padL, padB, padR, count };
inline constexpr const char* kPoolFieldNames[] = {"winH", "winW", "sH", "sW", "padT", "padL", "padB", "padR"};

static_assert(sizeof(kConvFieldNames) / sizeof(kConvFieldNames[0]) == static_cast<size_t>(ConvField::count));
static_assert(sizeof(kPoolFieldNames) / sizeof(kPoolFieldNames[0]) == static_cast<size_t>(PoolField::count));

struct Plan;

struct WeightArray {
  const float* data;
  size_t length;
};

struct PlanInfo {
  int64_t arenaBytes, weightBytes, scratchpadBytes, inputSize, outputSize;
  std::vector<std::string> steps;  // one line per executed primitive: what and oneDNN's implementation
};

Plan* createPlan(State& s, const std::vector<double>& spec, const std::vector<WeightArray>& weights);
// With `stepSeconds`, waits after each step and records its wall time (profiling).
void runPlan(State& s, Plan& p, Buffer& input, Buffer& output, std::vector<double>* stepSeconds = nullptr);
void setPlanWeights(State& s, Plan& p, const std::vector<WeightArray>& weights);
void destroyPlan(Plan* p);
PlanInfo planInfo(const Plan& p);
int64_t livePlans();

}  // namespace xnative
