// Every optimized oneDNN implementation of one forward-inference convolution (+bias +ReLU, as in a
// compiled plan), with the activations channels-last (nhwc), blocked (nChw16c) and `any`; best of
// 25 interleaved runs, buffers initialized (uninitialized memory can hold denormals). The blocked
// plan layout in plan.cc (Builder::choose) comes from this table.
//   g++ -std=c++17 -O2 src/bench/native/conv_impls.cc -ldnnl -o /tmp/conv_impls
//   /tmp/conv_impls batch in out size [kernel]   (kernel 1: pointwise, 3: depthwise 3×3)
//   for s in "1 728 728 19" "8 728 728 19" "1 128 128 147 3"; do /tmp/conv_impls $s; done
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

using namespace dnnl;
using tag = memory::format_tag;
using dt = memory::data_type;

int main(int argc, char** argv) {
  if (argc != 5 && argc != 6) {
    std::fprintf(stderr, "usage: %s batch in out size [kernel 1|3]\n", argv[0]);
    return 2;
  }
  const memory::dim n = std::atoi(argv[1]), ci = std::atoi(argv[2]), co = std::atoi(argv[3]), hw = std::atoi(argv[4]);
  const int k = argc == 6 ? std::atoi(argv[5]) : 1;
  if (k == 3 && ci != co) {
    std::fprintf(stderr, "a depthwise convolution keeps the channel count\n");
    return 2;
  }
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  post_ops po;
  po.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f);
  primitive_attr attr;
  attr.set_post_ops(po);
  struct Candidate {
    std::string name;
    std::function<void()> run;
  };
  std::vector<Candidate> candidates;
  for (tag t : {tag::nhwc, tag::nChw16c, tag::any}) {
    memory::desc src({n, ci, hw, hw}, dt::f32, t), dst({n, co, hw, hw}, dt::f32, t);
    memory::desc w = k == 1 ? memory::desc({co, ci, 1, 1}, dt::f32, tag::any)
                            : memory::desc({ci, 1, 1, 3, 3}, dt::f32, tag::any);
    memory::desc b({co}, dt::f32, tag::x);
    memory::dims pad = k == 1 ? memory::dims{0, 0} : memory::dims{1, 1};
    convolution_forward::desc d(prop_kind::forward_inference, algorithm::convolution_direct, src, w, b, dst, {1, 1}, pad,
                                pad);
    convolution_forward::primitive_desc pd(d, attr, eng);
    do {
      const std::string impl = pd.impl_info_str();
      if (impl.rfind("ref", 0) == 0) continue;  // minutes per run at these sizes
      memory xm(pd.src_desc(), eng), ym(pd.dst_desc(), eng), wm(pd.weights_desc(), eng), bm(b, eng);
      for (memory* m : {&xm, &ym, &wm, &bm}) {
        float* p = static_cast<float*>(m->get_data_handle());
        const size_t count = m->get_desc().get_size() / sizeof(float);
        for (size_t i = 0; i < count; ++i) p[i] = 0.001f * static_cast<float>(i % 97);
      }
      convolution_forward prim(pd);
      const char* layout = t == tag::nhwc ? "nhwc" : t == tag::nChw16c ? "nChw16c" : "any";
      candidates.push_back({std::string(layout) + " " + impl, [=, &s]() mutable {
                              prim.execute(s, {{DNNL_ARG_SRC, xm}, {DNNL_ARG_WEIGHTS, wm}, {DNNL_ARG_BIAS, bm}, {DNNL_ARG_DST, ym}});
                              s.wait();
                            }});
    } while (pd.next_impl());
  }
  std::vector<double> best(candidates.size(), 1e9);
  for (auto& c : candidates) c.run();  // warm up
  for (int rep = 0; rep < 25; ++rep)
    for (size_t i = 0; i < candidates.size(); ++i) {
      auto t0 = std::chrono::steady_clock::now();
      candidates[i].run();
      best[i] = std::min(best[i], std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  for (size_t i = 0; i < candidates.size(); ++i)
    std::printf("%ld  %ld→%ld at %ld  %s  %-36s %8.3f ms\n", long(n), long(ci), long(co), long(hw), k == 1 ? "1×1" : "dw 3×3",
                candidates[i].name.c_str(), best[i] * 1e3);
}
