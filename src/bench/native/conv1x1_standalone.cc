// The same 1×1 convolution as src/bench/scripts/native-conv1x1.ts, called from plain C++ with no binding, for
// a side-by-side check that the Node binding adds no measurable cost. Build and run:
//   g++ -std=c++17 -O3 src/bench/native/conv1x1_standalone.cc -ldnnl -o /tmp/conv1x1 && /tmp/conv1x1 [batch]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <sys/resource.h>
#include <time.h>

#include <oneapi/dnnl/dnnl.hpp>

int main(int argc, char** argv) {
  using namespace dnnl;
  using tag = memory::format_tag;
  const memory::dim n = argc > 1 ? std::atoi(argv[1]) : 1, hw = 19, c = 728;
  engine eng(engine::kind::cpu, 0);
  stream strm(eng);
  memory::desc src({n, c, hw, hw}, memory::data_type::f32, tag::nhwc);
  memory::desc dst({n, c, hw, hw}, memory::data_type::f32, tag::nhwc);
  memory::desc wUser({c, c, 1, 1}, memory::data_type::f32, tag::hwio);
  memory::desc wAny({c, c, 1, 1}, memory::data_type::f32, tag::any);
  convolution_forward::desc d(prop_kind::forward_training, algorithm::convolution_direct, src, wAny, dst, {1, 1},
                              {0, 0}, {0, 0}, {0, 0});
  convolution_forward::primitive_desc pd(d, eng);
  convolution_forward conv(pd);
  std::vector<float> x(n * hw * hw * c, 0.5f), w(c * c, 0.01f), y(n * hw * hw * c);
  memory xm(src, eng, x.data()), wm(wUser, eng, w.data()), ym(dst, eng, y.data());
  memory wp(pd.weights_desc(), eng);
  reorder(wm, wp).execute(strm, wm, wp);  // once, as the backend's per-buffer layout cache does
  auto once = [&] {
    conv.execute(strm, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wp}, {DNNL_ARG_DST, ym}});
    strm.wait();
  };
  for (int i = 0; i < 20; ++i) once();
  auto cpuNow = [] {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
  };
  auto faultsNow = [] {
    rusage u;
    getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_minflt);
  };
  std::vector<double> times, cpu;
  const int iters = 50, reps = 7;
  double f0 = faultsNow();
  for (int rep = 0; rep < reps; ++rep) {
    auto t0 = std::chrono::steady_clock::now();
    double c0 = cpuNow();
    for (int i = 0; i < iters; ++i) once();
    cpu.push_back((cpuNow() - c0) / iters);
    times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / iters);
  }
  double faults = (faultsNow() - f0) / (iters * reps);
  std::sort(times.begin(), times.end());
  std::sort(cpu.begin(), cpu.end());
  double flop = 2.0 * n * hw * hw * c * c;
  std::printf("standalone C++ %s: median %.3f ms = %.1f GFLOP/s (best %.1f); CPU %.3f ms/call = %.1f GFLOP/s per "
              "busy core; %.1f page faults/call\n",
              pd.impl_info_str(), times[3] * 1e3, flop / times[3] / 1e9, flop / times[0] / 1e9, cpu[3] * 1e3,
              flop / cpu[3] / 1e9, faults);
}
