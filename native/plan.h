// Compiled inference plans: a whole network, prepared once for one input shape and batch.
//
// TypeScript (src/infer/) walks the model, folds batch normalization into the convolutions and
// decides the fusions; it sends here a flat list of numbers (the spec, format below) and the
// folded weights as Float32Arrays. This file builds the oneDNN primitives once, lets them choose
// their activation layouts (format `any`: channels-last or blocked nChw16c), reorders the weights once,
// lays every intermediate activation out in one arena by liveness, and then runs the steps.
// Nothing in the spec is trusted: every index, size and geometry is checked before use.
//
// Spec (all numbers; value 0 is the input, step i defines value i + 1):
//   header: formatVersion=2, batch, height, width, channels, precision (0 f32, 1 bf16),
//           layout (0 oneDNN's choice, 1 blocked: see Builder::choose), stepCount, outputValue
//   steps, each a kind followed by its fields:
//     1 conv:    in, inH, inW, inC, outH, outW, outC, kH, kW, sH, sW, dH, dW, padT, padL, padB, padR,
//                groups, weightIndex, biasIndex (−1: none), sumValue (−1: none), postCount,
//                postCount × (postKind: 1 eltwise | 2 sum, algorithm, alpha)
//     2 eltwise: in, algorithm, alpha
//     3 pool:    in, algorithm (1 max, 2 average excluding padding), winH, winW, sH, sW,
//                padT, padL, padB, padR
//     4 global pool: in, algorithm (1 max, 2 average)
//     5 add:     count, count × in
//     6 concat (channels): count, count × in
//     7 dense:   in, units, weightIndex, biasIndex (−1: none), postCount, postCount × (1, alg, alpha)
//     8 softmax: in (a [batch, features] value)
//     9 batch norm (moving statistics): in, epsilon, gammaIndex, betaIndex, meanIndex, varianceIndex
//   eltwise algorithms: 1 relu, 2 elu (alpha).
//   sum post-op: the step writes into sumValue's memory, adding to it (sumValue must be dead
//   after this step and not the input); its value then aliases that memory.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "common.h"

namespace xnative {

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
