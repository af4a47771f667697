// A 1×1 stride-1 convolution over nhwc, each pass as oneDNN's convolution primitive (what it picks
// with `any` filters, plus the reorder from/to the Keras filter that the backend does) and as
// dnnl_sgemm on the plain buffers. The rules in kernels_dnnl.cc (ConvGeom::runsAsGemm) come from
// this table. Interleaved, best of 15 runs: on a shared machine the minimum is the steady figure.
//   g++ -std=c++17 -O2 src/bench/native/pointwise_gemm.cc -ldnnl -o /tmp/pointwise_gemm
//   for s in "8 728 728 19" "8 128 128 147" "32 256 728 16"; do /tmp/pointwise_gemm $s; done
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

int main(int argc, char** argv) {
  if (argc != 5) {
    std::fprintf(stderr, "usage: %s batch in out size\n", argv[0]);
    return 2;
  }
  const memory::dim n = std::atoi(argv[1]), ci = std::atoi(argv[2]), co = std::atoi(argv[3]), hw = std::atoi(argv[4]);
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  const memory::dim k = n * hw * hw;
  std::vector<float> x(k * ci, 0.01f), dy(k * co, 0.02f), w(ci * co, 0.03f), y(k * co), dx(k * ci), dw(ci * co);
  memory::desc src({n, ci, hw, hw}, dt::f32, tag::nhwc), dst({n, co, hw, hw}, dt::f32, tag::nhwc);
  memory::desc wAny({co, ci, 1, 1}, dt::f32, tag::any), wUser({co, ci, 1, 1}, dt::f32, tag::hwio);
  convolution_forward::primitive_desc fpd(
      convolution_forward::desc(prop_kind::forward_training, algorithm::convolution_direct, src, wAny, dst, {1, 1},
                                {0, 0}, {0, 0}),
      eng);
  convolution_backward_data::primitive_desc bdpd(
      convolution_backward_data::desc(algorithm::convolution_direct, src, wAny, dst, {1, 1}, {0, 0}, {0, 0}), eng, fpd);
  convolution_backward_weights::primitive_desc bwpd(
      convolution_backward_weights::desc(algorithm::convolution_direct, src, wAny, dst, {1, 1}, {0, 0}, {0, 0}), eng,
      fpd);
  memory xm(src, eng, x.data()), ym(dst, eng, y.data()), dym(dst, eng, dy.data()), dxm(src, eng, dx.data());
  memory wu(wUser, eng, w.data()), dwu(wUser, eng, dw.data());
  memory wf(fpd.weights_desc(), eng), wb(bdpd.weights_desc(), eng), dwp(bwpd.diff_weights_desc(), eng);
  reorder(wu, wf).execute(s, wu, wf);  // the backend keeps these per filter buffer
  reorder(wu, wb).execute(s, wu, wb);
  const bool toUser = bwpd.diff_weights_desc() != wUser;
  reorder back(dwp, dwu);
  convolution_forward fwd(fpd);
  convolution_backward_data bwdData(bdpd);
  convolution_backward_weights bwdWeights(bwpd);
  std::vector<std::function<void()>> runs = {
      [&] { fwd.execute(s, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wf}, {DNNL_ARG_DST, ym}}); s.wait(); },
      [&] { dnnl_sgemm('N', 'N', k, co, ci, 1.f, x.data(), ci, w.data(), co, 0.f, y.data(), co); },
      [&] { bwdData.execute(s, {{DNNL_ARG_DIFF_SRC, dxm}, {DNNL_ARG_WEIGHTS, wb}, {DNNL_ARG_DIFF_DST, dym}}); s.wait(); },
      [&] { dnnl_sgemm('N', 'T', k, ci, co, 1.f, dy.data(), co, w.data(), co, 0.f, dx.data(), ci); },
      [&] {
        bwdWeights.execute(s, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_DIFF_DST, dym}, {DNNL_ARG_DIFF_WEIGHTS, toUser ? dwp : dwu}});
        if (toUser) back.execute(s, dwp, dwu);
        s.wait();
      },
      [&] { dnnl_sgemm('T', 'N', ci, co, k, 1.f, x.data(), ci, dy.data(), co, 0.f, dw.data(), co); },
  };
  std::vector<double> best(runs.size(), 1e9);
  for (auto& run : runs) run();  // warm up
  for (int rep = 0; rep < 15; ++rep)
    for (size_t i = 0; i < runs.size(); ++i) {
      auto t0 = std::chrono::steady_clock::now();
      runs[i]();
      best[i] = std::min(best[i], std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  std::printf("%4ld %4ld→%-4ld at %-3ld  forward %6.2f / %6.2f  backward data %6.2f / %6.2f  backward filter %6.2f / %6.2f ms"
              "  (primitive / sgemm: %s, %s, %s)\n",
              long(n), long(ci), long(co), long(hw), best[0] * 1e3, best[1] * 1e3, best[2] * 1e3, best[3] * 1e3,
              best[4] * 1e3, best[5] * 1e3, fpd.impl_info_str(), bdpd.impl_info_str(), bwpd.impl_info_str());
}
