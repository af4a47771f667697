// Kernels that run oneDNN primitives: convolution, batch normalization, ReLU/ELU, pooling, matmul.
//
// All tensors use plain memory formats in this first version: activations nhwc, filters in the
// Keras layout (see `userWeightsMd`). Only the filters are handed to oneDNN as `any`, so the
// primitive picks its preferred (blocked) weight layout and we reorder into a per-shape scratch
// buffer; that is what lets oneDNN choose brgconv_1x1 for the pointwise layers. Blocked
// activations and fused inference live in compiled inference plans (plan.cc).
//
// Mixed precision (the `.bf16` convolution kernels): the contract stays float32 at the boundary.
// Inside, the operands a convolution multiplies (input, filter, output gradient) are rounded to
// bfloat16 by reorders, and oneDNN accumulates and writes float32 (output, input gradient, filter
// gradient). Shapes oneDNN has no fast bf16 kernel for run in float32 (see `lowPrecisionUsable`).
#include <algorithm>
#include <limits>
#include <string>

#include "common.h"

namespace xnative {
namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

enum Kind : int64_t {
  kConvFwd = 1,
  kConvBwdData,
  kConvBwdWeights,
  kBnTrain,
  kBnInfer,
  kBnBwd,
  kEltFwd,
  kEltBwd,
  kPoolFwd,
  kAvgPoolBwd,
  kMatmul,
  kGemmBf16,
  kFlatBf16,
};

memory wrap(State& s, const memory::desc& md, const float* p) {
  // oneDNN takes a non-const handle for every argument; inputs are only read.
  return memory(md, s.engine, const_cast<float*>(p));
}

// A temporary large enough for `md` (any data type), taken from the buffer pool.
std::unique_ptr<Buffer> scratchBuffer(const memory::desc& md) {
  return allocBuffer(static_cast<int64_t>((md.get_size() + sizeof(float) - 1) / sizeof(float)), false);
}

// The contents of `b` in layout `want`, reordered on first use and kept with the buffer until it
// is disposed or its version changes. A buffer keeps at most a few layouts (forward and
// backward-data filters may prefer different blockings).
template <class Fill>
memory derivedLayout(State& s, Buffer& b, const memory::desc& want, Fill fill) {
  for (DerivedLayout& d : b.derived) {
    if (d.desc != want) continue;
    if (d.version != b.version) {
      fill(d.mem);
      d.version = b.version;
    }
    return d.mem;
  }
  if (b.derived.size() >= 4) b.derived.erase(b.derived.begin());
  std::shared_ptr<Buffer> storage = scratchBuffer(want);
  memory mem(want, s.engine, storage->data);
  fill(mem);
  b.derived.push_back({want, storage, mem, b.version});
  return mem;
}

memory derivedLayout(State& s, Buffer& b, memory user, const memory::desc& want, dnnl::reorder& toWant) {
  return derivedLayout(s, b, want, [&](memory mem) { toWant.execute(s.stream, user, mem); });
}

// ---------------------------------------------------------------------------------------------
// Convolution

struct ConvGeom {
  int64_t n, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, g;
  bool bf16 = false;  // multiply in bfloat16 (the `.bf16` kernels)

  // Numbers in the field order of Conv2DParams (src/core/backend.ts).
  static ConvGeom parse(const Args& a) {
    ConvGeom c;
    c.n = a.dim(0, "batch");
    c.ih = a.dim(1, "inHeight");
    c.iw = a.dim(2, "inWidth");
    c.ic = a.dim(3, "inChannels");
    c.oh = a.dim(4, "outHeight");
    c.ow = a.dim(5, "outWidth");
    c.oc = a.dim(6, "outChannels");
    c.kh = a.dim(7, "kernelHeight");
    c.kw = a.dim(8, "kernelWidth");
    c.sh = a.dim(9, "strideHeight");
    c.sw = a.dim(10, "strideWidth");
    c.dh = a.dim(11, "dilationHeight");
    c.dw = a.dim(12, "dilationWidth");
    c.pt = a.dim(13, "padTop", 0);
    c.pl = a.dim(14, "padLeft", 0);
    c.pb = a.dim(15, "padBottom", 0);
    c.pr = a.dim(16, "padRight", 0);
    c.g = a.dim(17, "groups");
    if (c.ic % c.g != 0 || c.oc % c.g != 0)
      fail(a, "groups " + std::to_string(c.g) + " must divide inChannels " + std::to_string(c.ic) +
                  " and outChannels " + std::to_string(c.oc));
    checkAxis(a, "height", c.ih, c.kh, c.dh, c.sh, c.pt, c.pb, c.oh);
    checkAxis(a, "width", c.iw, c.kw, c.dw, c.sw, c.pl, c.pr, c.ow);
    return c;
  }

  // The output size must follow from the other numbers exactly as oneDNN computes it.
  static void checkAxis(const Args& a, const char* axis, int64_t in, int64_t k, int64_t d, int64_t s,
                        int64_t p0, int64_t p1, int64_t out) {
    int64_t span = in + p0 + p1 - ((k - 1) * d + 1);
    if (span < 0) fail(a, std::string("dilated window is larger than the padded input along ") + axis);
    if (span / s + 1 != out)
      fail(a, std::string("output ") + axis + " " + std::to_string(out) + " does not match input, window, stride " +
                  "and padding (expected " + std::to_string(span / s + 1) + ")");
  }

  int64_t xSize() const { return elems({n, ih, iw, ic}, "conv input"); }
  int64_t wSize() const { return elems({kh, kw, ic / g, oc}, "conv filter"); }
  int64_t ySize() const { return elems({n, oh, ow, oc}, "conv output"); }

  memory::desc srcMd(dt t = dt::f32) const { return memory::desc({n, ic, ih, iw}, t, tag::nhwc); }
  memory::desc dstMd(dt t = dt::f32) const { return memory::desc({n, oc, oh, ow}, t, tag::nhwc); }
  // The type the primitive multiplies in: bf16 for the operands it reads, when asked.
  dt low() const { return bf16 ? dt::bf16 : dt::f32; }

  // Filter layout mapping. Keras stores w[kh][kw][i][o] (HWIO), i in [0, in/groups), and output
  // channel o = gi·(out/groups) + oo belongs to group gi. Its flat offset is
  //   ((kh·KW + kw)·(in/g) + i)·out + gi·(out/g) + oo,
  // i.e. the memory order (KH, KW, I/G, G, O/G). oneDNN names grouped weights by the logical
  // dims (G, O/G, I/G, KH, KW); the format tag that lays those out as (KH, KW, I/G, G, O/G) is
  // `hwigo`. Ungrouped weights are (O, I, KH, KW) in oneDNN, and Keras HWIO is tag `hwio`.
  // A depthwise kernel [kh, kw, C, m] is the grouped case with G = C, I/G = 1, O/G = m.
  memory::desc userWeightsMd() const {
    if (g == 1) return memory::desc({oc, ic, kh, kw}, dt::f32, tag::hwio);
    return memory::desc({g, oc / g, ic / g, kh, kw}, dt::f32, tag::hwigo);
  }
  memory::desc anyWeightsMd(dt t = dt::f32) const {
    if (g == 1) return memory::desc({oc, ic, kh, kw}, t, tag::any);
    return memory::desc({g, oc / g, ic / g, kh, kw}, t, tag::any);
  }
  memory::dims strides() const { return {sh, sw}; }
  memory::dims dilates() const { return {dh - 1, dw - 1}; }  // oneDNN counts the gaps: d − 1
  memory::dims padL() const { return {pt, pl}; }
  memory::dims padR() const { return {pb, pr}; }

  std::vector<int64_t> key(Kind k) const {
    return {k, n, ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, g, bf16 ? 1 : 0};
  }

  // A 1×1, stride-1, unpadded, ungrouped convolution over nhwc is a matrix product with the Keras
  // filter as the matrix: Y[n·h·w, out] = X[n·h·w, in] · W[in, out]. Where oneDNN's GEMM beats its
  // convolution primitives, the pass runs as dnnl_sgemm. The rules come from
  // src/bench/native/pointwise_gemm.cc (best of 15 interleaved runs, 2-core AVX-512 machine): with
  // many channels and few pixels the GEMM wins — at Xception's middle flow (batch 8, 19×19, 728)
  // forward 10.3 → 9.3 ms, backward data 14.2 → 10.0, backward filter 21.6 → 14.1 — and with
  // few channels over many pixels (128→128 at 147×147) the convolution does.
  enum class Pass { kForward, kBackwardData, kBackwardFilter };
  bool runsAsGemm(Pass p) const {
    if (bf16) return false;  // dnnl_sgemm is float32; oneDNN's bf16 1×1 convolutions take these
    if (!pointwise()) return false;
    switch (p) {
      case Pass::kForward: return oc >= 512;
      case Pass::kBackwardData: return std::min(ic, oc) >= 512;
      case Pass::kBackwardFilter: return ic * oc >= 128 * 256;
    }
    return false;
  }
  int64_t pixels() const { return n * ih * iw; }

  // oneDNN 2.6's jit_1x1 filter gradient (avx512_core and avx2) runs a strided 1×1 over nhwc by
  // first copying the sampled pixels into a per-thread workspace. With fewer input channels than
  // its channel block (16 on AVX-512, 8 on AVX2) it spaces those copies by the block, not by the
  // channel count, and writes past the workspace: heap corruption, then a SIGSEGV, a hang or, on
  // AVX2, wrong gradients (small Xception shortcuts, e.g. 8 → 16 channels at 64×64; oneDNN issue
  // #6035). These shapes never reach oneDNN's convolution: they run as a gather and a GEMM.
  static constexpr int64_t kWidestChannelBlock = 16;
  bool stridedPointwiseFewChannels() const {
    return kh == 1 && kw == 1 && g == 1 && (sh > 1 || sw > 1) && ic < kWidestChannelBlock;
  }

  // Whether a pass is worth running in bf16 (the `.bf16` kernels run the others in float32).
  // Measured on the 2-core Zen 5 machine (AVX512_BF16), batch 8, best of 4, fp32 → bf16 ms: with
  // few input channels nothing gains (the 3-channel stem, forward 1.2 → 15.7); oneDNN 2.6's bf16
  // filter gradients lose for depthwise (jit_dw, 19×19×728 one thread 2.2 → 33.6) and 1×1
  // (64→128 at 147×147 18.7 → 40.0; 728→728 at 19×19 28.2 → 28.2) and win for full 3×3
  // convolutions (32→64 at 149×149 56.0 → 15.4). Forward and backward data gain 2–3× on the
  // pointwise and full convolutions (147×147 1×1 17.2 → 6.3, 28.5 → 13.2).
  // 1×1 filter gradients of unstrided, unpadded convolutions do gain as a bf16 matrix product
  // (oneDNN's matmul, brgemm; see pointwiseBf16): 728→728 at 19×19 batch 8, one
  // thread, 37.4 → 1.5 rounding + 23.0 ms. Depthwise convolutions lose in every pass, even before
  // rounding their operands (728 channels at 19×19 batch 8, one thread: forward 1.37 → 2.06 ms,
  // backward data 1.44 → 1.97; 128 at 147×147: 12.0 → 23.5, 12.6 → 20.4): they are memory-bound.
  bool bf16Pays(Pass p) const {
    if (ic < kWidestChannelBlock || g != 1) return false;
    return p != Pass::kBackwardFilter || !(kh == 1 && kw == 1) || pointwise();
  }
  // Xception's depthwise layers (3×3, stride 1, one pixel of padding) run as own loops
  // (kernels_dw.cc), which read and write bf16 where the bf16 neighbours keep it.
  bool ownDepthwise() const {
    return g > 1 && g == ic && g == oc && kh == 3 && kw == 3 && sh == 1 && sw == 1 && dh == 1 && dw == 1 && pt == 1 &&
           pl == 1 && pb == 1 && pr == 1 && oh == ih && ow == iw && ownDepthwiseAvailable();
  }
  DwShape dwShape() const { return {n, ih, iw, ic}; }
  bool pointwise() const {
    return kh == 1 && kw == 1 && sh == 1 && sw == 1 && pt == 0 && pl == 0 && pb == 0 && pr == 0 && g == 1;
  }

  dnnl::convolution_forward::desc forwardDesc() const {
    return dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, dnnl::algorithm::convolution_direct,
                                           srcMd(low()), anyWeightsMd(low()), dstMd(), strides(), dilates(), padL(),
                                           padR());
  }
};

// A bf16 primitive is worth running only where oneDNN has a jit kernel for it: its reference
// implementation is orders of magnitude slower than float32. Building may also fail outright (a
// CPU without AVX-512 has no bf16 convolutions in oneDNN 2.6). Either way the shape runs in float32.
template <class PD, class Make>
bool lowPrecisionUsable(PD& pd, Make make) {
  try {
    pd = make();
  } catch (const dnnl::error&) {
    return false;
  }
  return std::string(pd.impl_info_str()).rfind("ref", 0) != 0;
}


// Rounds a float32 tensor to bf16 in the same element order (nhwc to nhwc, or flat): with
// AVX512_BF16 by our own loop (3× oneDNN's reorder on tensors in cache), else by oneDNN's reorder.
struct ToBf16 {
  memory::desc from, to;
  dnnl::reorder prim;
  int64_t count = 0;  // elements
  void init(State& s, const memory::desc& f32) { init(s, f32, memory::desc(f32.dims(), dt::bf16, tag::nhwc)); }
  void init(State& s, const memory::desc& f32, const memory::desc& bf16) {
    from = f32;
    to = bf16;
    count = static_cast<int64_t>(f32.get_size() / sizeof(float));
    prim = dnnl::reorder(dnnl::reorder::primitive_desc(s.engine, from, s.engine, to));
  }
  void run(State& s, memory user, memory low) const {
    if (ownBf16Rounding()) {
      roundToBf16Avx512(static_cast<const float*>(user.get_data_handle()), static_cast<uint16_t*>(low.get_data_handle()), count);
      return;
    }
    prim.execute(s.stream, user, low);
  }
};

// `f32Instead`: a bf16 entry whose shape has no usable bf16 primitive; the kernel runs float32.
struct ConvFwd : CacheEntry {
  bool f32Instead = false;
  dnnl::convolution_forward::primitive_desc pd;
  dnnl::convolution_forward prim;
  memory::desc src, dst, userW;
  bool reorderW = false;
  dnnl::reorder toPrimW;  // Keras layout → the primitive's filter layout (and type)
  ToBf16 lowSrc;          // bf16 only
};

struct ConvBwdData : CacheEntry {
  bool f32Instead = false;
  dnnl::convolution_backward_data::primitive_desc pd;
  dnnl::convolution_backward_data prim;
  memory::desc diffSrc, diffDst, userW;
  bool reorderW = false;
  dnnl::reorder toPrimW;
  ToBf16 lowDiffDst;  // bf16 only
};

struct ConvBwdWeights : CacheEntry {
  bool f32Instead = false;
  dnnl::convolution_backward_weights::primitive_desc pd;
  dnnl::convolution_backward_weights prim;
  memory::desc src, diffDst, userW;
  bool reorderW = false;
  dnnl::reorder toUserW;
  memory primDiffW;
  ToBf16 lowSrc, lowDiffDst;  // bf16 only
};

// `user` reordered by `prim` into `want`, in a temporary `tmp` from the buffer pool.
memory reorderedTemporary(State& s, memory user, const memory::desc& want, const dnnl::reorder& prim,
                          std::unique_ptr<Buffer>& tmp) {
  tmp = scratchBuffer(want);
  memory mem(want, s.engine, tmp->data);
  prim.execute(s.stream, user, mem);
  return mem;
}

// `user` rounded into a bf16 temporary `tmp`.
memory rounded(State& s, const ToBf16& r, memory user, std::unique_ptr<Buffer>& tmp) {
  tmp = scratchBuffer(r.to);
  memory low(r.to, s.engine, tmp->data);
  r.run(s, user, low);
  return low;
}

// `user` as the primitive reads it: the float32 memory itself, or its bf16 copy in `tmp`.
memory lowered(State& s, const ConvGeom& c, const ToBf16& r, memory user, std::unique_ptr<Buffer>& tmp) {
  if (!c.bf16) return user;
  return rounded(s, r, user, tmp);
}

// The filter in the primitive's layout. A float32 one is kept with the weights' buffer (inference
// calls repeat it). A bf16 one goes to a temporary instead: training updates the weights every
// step, so a kept copy would be redone each step anyway, and keeping one per filter would hold
// memory float32 training does not (peak memory no higher than float32's).
memory primitiveFilter(State& s, const ConvGeom& c, Buffer& w, memory user, const memory::desc& want, dnnl::reorder& toWant,
                       std::unique_ptr<Buffer>& tmp) {
  return c.bf16 ? reorderedTemporary(s, user, want, toWant, tmp) : derivedLayout(s, w, user, want, toWant);
}

ConvFwd& convFwdEntry(State& s, const ConvGeom& c) {
  return s.cached<ConvFwd>(c.key(kConvFwd), [&] {
    auto e = std::make_unique<ConvFwd>();
    auto make = [&] { return dnnl::convolution_forward::primitive_desc(c.forwardDesc(), s.engine); };
    if (!c.bf16) {
      e->pd = make();
    } else if (!lowPrecisionUsable(e->pd, make)) {
      e->f32Instead = true;
      return e;
    }
    e->prim = dnnl::convolution_forward(e->pd);
    e->src = c.srcMd();
    e->dst = c.dstMd();
    e->userW = c.userWeightsMd();
    if (c.bf16) e->lowSrc.init(s, e->src);
    if (e->pd.weights_desc() != e->userW) {
      e->reorderW = true;
      e->toPrimW = dnnl::reorder(dnnl::reorder::primitive_desc(s.engine, e->userW, s.engine, e->pd.weights_desc()));
    }
    return e;
  });
}

ConvBwdData& convBwdDataEntry(State& s, const ConvGeom& c) {
  return s.cached<ConvBwdData>(c.key(kConvBwdData), [&] {
    auto e = std::make_unique<ConvBwdData>();
    auto make = [&] {
      dnnl::convolution_forward::primitive_desc hint(c.forwardDesc(), s.engine);
      dnnl::convolution_backward_data::desc d(dnnl::algorithm::convolution_direct, c.srcMd(), c.anyWeightsMd(c.low()),
                                              c.dstMd(c.low()), c.strides(), c.dilates(), c.padL(), c.padR());
      return dnnl::convolution_backward_data::primitive_desc(d, s.engine, hint);
    };
    if (!c.bf16) {
      e->pd = make();
    } else if (!lowPrecisionUsable(e->pd, make)) {
      e->f32Instead = true;
      return e;
    }
    e->prim = dnnl::convolution_backward_data(e->pd);
    e->diffSrc = c.srcMd();
    e->diffDst = c.dstMd();
    e->userW = c.userWeightsMd();
    if (c.bf16) e->lowDiffDst.init(s, e->diffDst);
    if (e->pd.weights_desc() != e->userW) {
      e->reorderW = true;
      e->toPrimW = dnnl::reorder(dnnl::reorder::primitive_desc(s.engine, e->userW, s.engine, e->pd.weights_desc()));
    }
    return e;
  });
}

ConvBwdWeights& convBwdWeightsEntry(State& s, const ConvGeom& c) {
  return s.cached<ConvBwdWeights>(c.key(kConvBwdWeights), [&] {
    auto e = std::make_unique<ConvBwdWeights>();
    auto make = [&] {
      dnnl::convolution_forward::primitive_desc hint(c.forwardDesc(), s.engine);
      dnnl::convolution_backward_weights::desc d(dnnl::algorithm::convolution_direct, c.srcMd(c.low()), c.anyWeightsMd(),
                                                 c.dstMd(c.low()), c.strides(), c.dilates(), c.padL(), c.padR());
      return dnnl::convolution_backward_weights::primitive_desc(d, s.engine, hint);
    };
    if (!c.bf16) {
      e->pd = make();
    } else if (!lowPrecisionUsable(e->pd, make)) {
      e->f32Instead = true;
      return e;
    }
    // Refuse, rather than run, the implementation that corrupts the heap on these shapes.
    if (c.stridedPointwiseFewChannels() && std::string(e->pd.impl_info_str()).rfind("jit_1x1", 0) == 0)
      throw KernelError("conv2dBackwardFilter: oneDNN's jit_1x1 would overrun its workspace on a strided 1x1 "
                        "convolution with " + std::to_string(c.ic) + " input channels");
    e->prim = dnnl::convolution_backward_weights(e->pd);
    e->src = c.srcMd();
    e->diffDst = c.dstMd();
    e->userW = c.userWeightsMd();
    if (c.bf16) {
      e->lowSrc.init(s, e->src);
      e->lowDiffDst.init(s, e->diffDst);
    }
    if (e->pd.diff_weights_desc() != e->userW) {
      e->reorderW = true;
      e->primDiffW = memory(e->pd.diff_weights_desc(), s.engine);
      e->toUserW = dnnl::reorder(dnnl::reorder::primitive_desc(s.engine, e->pd.diff_weights_desc(), s.engine, e->userW));
    }
    return e;
  });
}

// A pointwise pass as one bf16 matrix product C[m, n] = A[m, k] · B[k, n] through oneDNN's matmul
// (brgemm on AVX512_BF16). A and B are the caller's matrices rounded to bf16 element for element,
// a transposed one read as a strided view (brgemm reads it so; no transposing copy); C is float32.
// `f32Instead`: no fast bf16 matmul here (a reference one, or none).
struct GemmBf16 : CacheEntry {
  bool f32Instead = false;
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
  memory::desc aLow, bLow, c;
};

// A rows × cols row-major matrix, or (`transposed`) the transpose of a cols × rows one.
memory::desc matrixMd(int64_t rows, int64_t cols, bool transposed, dt t) {
  return memory::desc({rows, cols}, t, transposed ? memory::dims{1, rows} : memory::dims{cols, 1});
}

GemmBf16& gemmBf16Entry(State& s, int64_t m, int64_t n, int64_t k, bool transA, bool transB, bool lowC) {
  return s.cached<GemmBf16>({kGemmBf16, m, n, k, transA ? 1 : 0, transB ? 1 : 0, lowC ? 1 : 0}, [&] {
    auto e = std::make_unique<GemmBf16>();
    e->c = matrixMd(m, n, false, lowC ? dt::bf16 : dt::f32);
    e->aLow = matrixMd(m, k, transA, dt::bf16);
    e->bLow = matrixMd(k, n, transB, dt::bf16);
    auto make = [&] { return dnnl::matmul::primitive_desc(dnnl::matmul::desc(e->aLow, e->bLow, e->c), s.engine); };
    if (!lowPrecisionUsable(e->pd, make)) {
      e->f32Instead = true;
      return e;
    }
    e->prim = dnnl::matmul(e->pd);
    return e;
  });
}

// Rounds n float32s to bf16 in the same element order, flat, whatever layout the caller reads
// them in (a transposed matrix view included), so nothing is transposed here.
struct FlatBf16 : CacheEntry {
  ToBf16 round;
};

const ToBf16& flatBf16(State& s, int64_t n) {
  return s.cached<FlatBf16>({kFlatBf16, n}, [&] {
    auto e = std::make_unique<FlatBf16>();
    e->round.init(s, memory::desc({n}, dt::f32, tag::a), memory::desc({n}, dt::bf16, tag::a));
    return e;
  }).round;
}

// The first n elements of `b` rounded to bf16 (a low buffer's own contents), kept with the buffer
// until it is disposed, written or dropped: an output gradient feeds the backward-data and
// filter-gradient products, an input the forward and the filter gradient; each is rounded once.
// The low outputs pay for the kept inputs' memory. (Filters are not kept: a bf16 copy of every
// filter would lift peak memory, and a filter rounds in a fraction of a millisecond.)
void* keptBf16(State& s, Buffer& b, int64_t n) {
  if (isLow(b)) return lowData(b);  // already bf16 (b.data is null)
  const ToBf16& r = flatBf16(s, n);
  memory user = wrap(s, r.from, b.data);
  return derivedLayout(s, b, r.to, [&](memory low) { r.run(s, user, low); }).get_data_handle();
}

// The same, into a temporary `tmp`: for a filter, rounded for each pass that reads it.
void* temporaryBf16(State& s, const float* p, int64_t n, std::unique_ptr<Buffer>& tmp) {
  const ToBf16& r = flatBf16(s, n);
  return rounded(s, r, wrap(s, r.from, p), tmp).get_data_handle();
}

// Drops `b`'s kept rounding of its first n elements once the filter gradient (its last reader)
// has run, so it lives no longer than the temporaries it replaces. A low buffer keeps its own.
void dropKeptBf16(State& s, Buffer& b, int64_t n) {
  if (isLow(b)) return;  // the bf16 values are its contents
  const memory::desc& want = flatBf16(s, n).to;
  auto& d = b.derived;
  d.erase(std::remove_if(d.begin(), d.end(), [&](const DerivedLayout& l) { return l.desc == want; }), d.end());
}

// C = A · B on operands already rounded to bf16 (laid out as `e.aLow` and `e.bLow` say); C is
// float32 or, for a low output, bf16 (`e.c`).
void runGemmBf16(State& s, const GemmBf16& e, void* aLow, void* bLow, void* c) {
  memory lowA(e.aLow, s.engine, aLow), lowB(e.bLow, s.engine, bLow), out(e.c, s.engine, c);
  e.prim.execute(s.stream, {{DNNL_ARG_SRC, lowA}, {DNNL_ARG_WEIGHTS, lowB}, {DNNL_ARG_DST, out}});
  s.stream.wait();
}

// A pass of a pointwise convolution as a bf16 matrix product: Y = X · W, dX = dY · Wᵀ,
// dW[ic, oc] = Xᵀ · dY (W in the Keras layout is the row-major [ic, oc] matrix). Null where it has
// no fast bf16 matmul here (the caller runs float32). oneDNN's bf16 convolutions want blocked
// filters, whose reorder ran at 3 GB/s; the matmul reads W as it is.
// Where bf16 is native the forward's Y is a low buffer (lowForwardOutput): its readers (batch
// norm) take bf16, and it is half the memory while it waits for the backward.
bool lowForwardOutput() { return ownBf16Rounding(); }

GemmBf16* pointwiseBf16(State& s, const ConvGeom& c, ConvGeom::Pass p) {
  GemmBf16& e = p == ConvGeom::Pass::kForward        ? gemmBf16Entry(s, c.pixels(), c.oc, c.ic, false, false, lowForwardOutput())
                : p == ConvGeom::Pass::kBackwardData ? gemmBf16Entry(s, c.pixels(), c.ic, c.oc, false, true, lowForwardOutput())
                                                     : gemmBf16Entry(s, c.ic, c.oc, c.pixels(), true, false, false);
  return e.f32Instead ? nullptr : &e;
}

// Row-major C[m, n] = op(A) · op(B), through oneDNN's GEMM (OpenMP threads like the primitives).
void gemm(const Args& a, char transA, char transB, int64_t m, int64_t n, int64_t k, const float* A, int64_t lda,
          const float* B, int64_t ldb, float* C, int64_t ldc) {
  if (dnnl_sgemm(transA, transB, m, n, k, 1.f, A, lda, B, ldb, 0.f, C, ldc) != dnnl_success) fail(a, "dnnl_sgemm failed");
}

constexpr const char* kGemmImpl = "gemm:dnnl_sgemm";
constexpr const char* kGatherGemmImpl = "gather+gemm:dnnl_sgemm";
constexpr const char* kOwnDepthwiseImpl = "own:depthwise3x3_avx512";

// The input pixels a 1×1 convolution reads, one [ic] row per output pixel (zeros where the
// window sits on padding): the [n·oh·ow, ic] matrix its filter gradient multiplies with dY.
void gatherPointwiseInput(const ConvGeom& c, const float* x, float* rows) {
  const int64_t outPixels = c.n * c.oh * c.ow;
#pragma omp parallel for schedule(static) if (outPixels * c.ic > kParallelMin)
  for (int64_t p = 0; p < outPixels; p++) {
    const int64_t b = p / (c.oh * c.ow), oy = p / c.ow % c.oh, ox = p % c.ow;
    const int64_t iy = oy * c.sh - c.pt, ix = ox * c.sw - c.pl;
    float* row = rows + p * c.ic;
    if (iy < 0 || iy >= c.ih || ix < 0 || ix >= c.iw)
      std::fill(row, row + c.ic, 0.f);
    else
      std::copy_n(x + ((b * c.ih + iy) * c.iw + ix) * c.ic, c.ic, row);
  }
}

// A depthwise pass as own loops: y = depthwise(input 0, w), or with w turned 180° for the input
// gradient (input 0 then dy). Input 0 is read as it is stored; y is bf16 if `lowOutput`.
void depthwiseForward(const Args& a, Result& r, const ConvGeom& c, const float* w, bool lowOutput, bool turned = false) {
  const int64_t inSize = turned ? c.ySize() : c.xSize(), outSize = turned ? c.xSize() : c.ySize();
  const DwShape d = c.dwShape();
  auto run = [&](const auto* in) {
    if (lowOutput) return depthwise3x3(d, in, w, turned, r.addLow(outSize));
    depthwise3x3(d, in, w, turned, r.add(outSize));
  };
  if (const uint16_t* low = a.lowInput(0, inSize, turned ? "dy" : "x")) return run(low);
  run(a.input(0, inSize, turned ? "dy" : "x"));
}

// inputs: x, w
void conv2dAs(State& s, const Args& a, Result& r, bool bf16) {
  a.expectCounts(2, 18);
  ConvGeom c = ConvGeom::parse(a);
  c.bf16 = bf16 && c.bf16Pays(ConvGeom::Pass::kForward);
  a.lowInput(0, c.xSize(), "x");  // checked here; read as float32 only where needed
  const float* w = a.input(1, c.wSize(), "filter");
  if (c.bf16 && c.pointwise()) {
    GemmBf16* e = pointwiseBf16(s, c, ConvGeom::Pass::kForward);
    if (!e) return conv2dAs(s, a, r, false);
    // x's rounding is kept for the filter gradient, which drops it; a low Y pays for it in memory.
    std::unique_ptr<Buffer> wLow;
    void* xl = keptBf16(s, *a.in[0], c.xSize());
    void* y = lowForwardOutput() ? static_cast<void*>(r.addLow(c.ySize())) : static_cast<void*>(r.add(c.ySize()));
    runGemmBf16(s, *e, xl, temporaryBf16(s, w, c.wSize(), wLow), y);
    return;
  }
  if (c.ownDepthwise()) return depthwiseForward(a, r, c, w, bf16 && lowForwardOutput());
  const float* x = a.input(0, c.xSize(), "x");
  if (c.runsAsGemm(ConvGeom::Pass::kForward)) {  // Y = X · W
    float* y = r.add(c.ySize());
    gemm(a, 'N', 'N', c.pixels(), c.oc, c.ic, x, c.ic, w, c.oc, y, c.oc);
    return;
  }
  ConvFwd& e = convFwdEntry(s, c);
  if (e.f32Instead) return conv2dAs(s, a, r, false);
  float* y = r.add(c.ySize());
  memory wUser = wrap(s, e.userW, w);
  std::unique_ptr<Buffer> wTmp;
  memory wPrim = e.reorderW ? primitiveFilter(s, c, *a.in[1], wUser, e.pd.weights_desc(), e.toPrimW, wTmp) : wUser;
  std::unique_ptr<Buffer> xLow;
  memory src = lowered(s, c, e.lowSrc, wrap(s, e.src, x), xLow);
  e.prim.execute(s.stream, {{DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wPrim}, {DNNL_ARG_DST, wrap(s, e.dst, y)}});
  s.stream.wait();
}

// inputs: dy, w
void conv2dBackwardInputAs(State& s, const Args& a, Result& r, bool bf16) {
  a.expectCounts(2, 18);
  ConvGeom c = ConvGeom::parse(a);
  c.bf16 = bf16 && c.bf16Pays(ConvGeom::Pass::kBackwardData);
  a.lowInput(0, c.ySize(), "dy");  // checked here; read as float32 only where needed
  const float* w = a.input(1, c.wSize(), "filter");
  if (c.runsAsGemm(ConvGeom::Pass::kBackwardData)) {  // dX = dY · Wᵀ
    float* dx = r.add(c.xSize());
    gemm(a, 'N', 'T', c.pixels(), c.ic, c.oc, a.input(0, c.ySize(), "dy"), c.oc, w, c.oc, dx, c.ic);
    return;
  }
  if (c.bf16 && c.pointwise()) {
    GemmBf16* e = pointwiseBf16(s, c, ConvGeom::Pass::kBackwardData);
    if (!e) return conv2dBackwardInputAs(s, a, r, false);
    std::unique_ptr<Buffer> wLow;
    void* dyl = keptBf16(s, *a.in[0], c.ySize());
    void* dx = lowForwardOutput() ? static_cast<void*>(r.addLow(c.xSize())) : static_cast<void*>(r.add(c.xSize()));
    runGemmBf16(s, *e, dyl, temporaryBf16(s, w, c.wSize(), wLow), dx);
    return;
  }
  if (c.ownDepthwise()) return depthwiseForward(a, r, c, w, false, true);
  const float* dy = a.input(0, c.ySize(), "dy");
  ConvBwdData& e = convBwdDataEntry(s, c);
  if (e.f32Instead) return conv2dBackwardInputAs(s, a, r, false);
  float* dx = r.add(c.xSize());
  memory wUser = wrap(s, e.userW, w);
  std::unique_ptr<Buffer> wTmp;
  memory wPrim = e.reorderW ? primitiveFilter(s, c, *a.in[1], wUser, e.pd.weights_desc(), e.toPrimW, wTmp) : wUser;
  std::unique_ptr<Buffer> dyLow;
  memory diffDst = lowered(s, c, e.lowDiffDst, wrap(s, e.diffDst, dy), dyLow);
  e.prim.execute(s.stream, {{DNNL_ARG_DIFF_DST, diffDst},
                            {DNNL_ARG_WEIGHTS, wPrim},
                            {DNNL_ARG_DIFF_SRC, wrap(s, e.diffSrc, dx)}});
  s.stream.wait();
}

// inputs: x, dy
void conv2dBackwardFilterAs(State& s, const Args& a, Result& r, bool bf16) {
  a.expectCounts(2, 18);
  ConvGeom c = ConvGeom::parse(a);
  a.lowInput(0, c.xSize(), "x");  // checked here; read as float32 only where needed
  a.lowInput(1, c.ySize(), "dy");
  c.bf16 = bf16 && c.bf16Pays(ConvGeom::Pass::kBackwardFilter);
  if (c.bf16 && c.pointwise()) {
    GemmBf16* e = pointwiseBf16(s, c, ConvGeom::Pass::kBackwardFilter);
    if (!e) return conv2dBackwardFilterAs(s, a, r, false);
    void* xl = keptBf16(s, *a.in[0], c.xSize());
    runGemmBf16(s, *e, xl, keptBf16(s, *a.in[1], c.ySize()), r.add(c.wSize()));
    dropKeptBf16(s, *a.in[0], c.xSize());
    dropKeptBf16(s, *a.in[1], c.ySize());
    return;
  }
  const float* x = a.input(0, c.xSize(), "x");
  if (c.ownDepthwise()) {
    float* dw = r.add(c.wSize());
    if (const uint16_t* dyl = a.lowInput(1, c.ySize(), "dy")) return depthwise3x3Filter(c.dwShape(), x, dyl, dw);
    return depthwise3x3Filter(c.dwShape(), x, a.input(1, c.ySize(), "dy"), dw);
  }
  const float* dy = a.input(1, c.ySize(), "dy");
  if (c.runsAsGemm(ConvGeom::Pass::kBackwardFilter)) {  // dW = Xᵀ · dY
    float* dw = r.add(c.wSize());
    gemm(a, 'T', 'N', c.ic, c.oc, c.pixels(), x, c.ic, dy, c.oc, dw, c.oc);
    return;
  }
  if (c.stridedPointwiseFewChannels()) {  // dW = Xsampledᵀ · dY
    const int64_t outPixels = elems({c.n, c.oh, c.ow}, "conv output pixels");
    std::unique_ptr<Buffer> sampled = allocBuffer(elems({outPixels, c.ic}, "sampled conv input"), false);
    gatherPointwiseInput(c, x, sampled->data);
    float* dw = r.add(c.wSize());
    gemm(a, 'T', 'N', c.ic, c.oc, outPixels, sampled->data, c.ic, dy, c.oc, dw, c.oc);
    return;
  }
  ConvBwdWeights& e = convBwdWeightsEntry(s, c);
  if (e.f32Instead) return conv2dBackwardFilterAs(s, a, r, false);
  float* dw = r.add(c.wSize());
  memory dwUser = wrap(s, e.userW, dw);
  std::unique_ptr<Buffer> xLow, dyLow;
  memory src = lowered(s, c, e.lowSrc, wrap(s, e.src, x), xLow);
  memory diffDst = lowered(s, c, e.lowDiffDst, wrap(s, e.diffDst, dy), dyLow);
  e.prim.execute(s.stream, {{DNNL_ARG_SRC, src},
                            {DNNL_ARG_DIFF_DST, diffDst},
                            {DNNL_ARG_DIFF_WEIGHTS, e.reorderW ? e.primDiffW : dwUser}});
  if (e.reorderW) e.toUserW.execute(s.stream, e.primDiffW, dwUser);
  s.stream.wait();
}

// Diagnostics (inputs: x; nums: n): x rounded to bf16 by oneDNN's reorder, then, where the CPU
// has AVX512_BF16, by our loop; each widened back to float32, for a test that they agree bitwise.
void roundBf16Paths(State& s, const Args& a, Result& r) {
  a.expectCounts(1, 1);
  const int64_t n = a.dim(0, "size");
  const float* x = a.input(0, n, "x");
  const ToBf16& flat = flatBf16(s, n);
  std::vector<uint16_t> low(static_cast<size_t>(n));
  auto widen = [&] { widenBf16(low.data(), r.add(n), n); };
  memory user = wrap(s, flat.from, x), lowMem(flat.to, s.engine, low.data());
  flat.prim.execute(s.stream, user, lowMem);
  s.stream.wait();
  widen();
  if (!ownBf16Rounding()) return;
  roundToBf16Avx512(x, low.data(), n);
  widen();
}

void conv2d(State& s, const Args& a, Result& r) { conv2dAs(s, a, r, false); }
void conv2dBackwardInput(State& s, const Args& a, Result& r) { conv2dBackwardInputAs(s, a, r, false); }
void conv2dBackwardFilter(State& s, const Args& a, Result& r) { conv2dBackwardFilterAs(s, a, r, false); }
void conv2dBf16(State& s, const Args& a, Result& r) { conv2dAs(s, a, r, true); }
void conv2dBackwardInputBf16(State& s, const Args& a, Result& r) { conv2dBackwardInputAs(s, a, r, true); }
void conv2dBackwardFilterBf16(State& s, const Args& a, Result& r) { conv2dBackwardFilterAs(s, a, r, true); }

// ---------------------------------------------------------------------------------------------
// Batch normalization over a [rows, channels] view. oneDNN, like the contract, normalizes with
// the biased batch variance.

struct BnGeom {
  int64_t rows, ch;
  double eps;
  static BnGeom parse(const Args& a) {
    BnGeom b;
    b.rows = a.dim(0, "rows");
    b.ch = a.dim(1, "channels");
    b.eps = a.real(2, "epsilon");
    if (!(b.eps > 0)) fail(a, "epsilon must be positive");
    elems({b.rows, b.ch}, "batch norm input");
    return b;
  }
  int64_t size() const { return rows * ch; }
  // Rows as the batch of a 1×1 nhwc image: oneDNN runs its jit (nspc) batch norm on that, and
  // a slow generic one on the 2-D `nc` view of the same memory.
  memory::desc dataMd() const { return memory::desc({rows, ch, 1, 1}, dt::f32, tag::nhwc); }
  memory::desc chanMd() const { return memory::desc({ch}, dt::f32, tag::a); }
  std::vector<int64_t> key(Kind k) const { return {k, rows, ch, keyBits(eps)}; }
};

const dnnl::normalization_flags kScaleShift =
    dnnl::normalization_flags::use_scale | dnnl::normalization_flags::use_shift;

struct BnFwd : CacheEntry {
  dnnl::batch_normalization_forward::primitive_desc pd;
  dnnl::batch_normalization_forward prim;
  memory::desc data, chan;
};

struct BnBwd : CacheEntry {
  dnnl::batch_normalization_backward::primitive_desc pd;
  dnnl::batch_normalization_backward prim;
  memory::desc data, chan;
  // oneDNN 2.6 insists on a shift argument for the backward pass although the gradient does not
  // depend on beta; the contract passes none, so it gets zeros.
  memory zeroShift;
};

dnnl::batch_normalization_forward::primitive_desc bnTrainPd(State& s, const BnGeom& b) {
  dnnl::batch_normalization_forward::desc d(dnnl::prop_kind::forward_training, b.dataMd(), static_cast<float>(b.eps),
                                            kScaleShift);
  return dnnl::batch_normalization_forward::primitive_desc(d, s.engine);
}

// inputs: x, gamma, beta → y, mean, variance
void batchNormTrain(State& s, const Args& a, Result& r) {
  a.expectCounts(3, 3);
  BnGeom b = BnGeom::parse(a);
  const float* x = a.input(0, b.size(), "x");
  const float* gamma = a.input(1, b.ch, "gamma");
  const float* beta = a.input(2, b.ch, "beta");
  BnFwd& e = s.cached<BnFwd>(b.key(kBnTrain), [&] {
    auto e = std::make_unique<BnFwd>();
    e->pd = bnTrainPd(s, b);
    e->prim = dnnl::batch_normalization_forward(e->pd);
    e->data = b.dataMd();
    e->chan = b.chanMd();
    return e;
  });
  float* y = r.add(b.size());
  float* mean = r.add(b.ch);
  float* var = r.add(b.ch);
  e.prim.execute(s.stream, {{DNNL_ARG_SRC, wrap(s, e.data, x)},
                            {DNNL_ARG_DST, wrap(s, e.data, y)},
                            {DNNL_ARG_SCALE, wrap(s, e.chan, gamma)},
                            {DNNL_ARG_SHIFT, wrap(s, e.chan, beta)},
                            {DNNL_ARG_MEAN, wrap(s, e.chan, mean)},
                            {DNNL_ARG_VARIANCE, wrap(s, e.chan, var)}});
  s.stream.wait();
}

// inputs: x, gamma, beta, mean, variance → y
void batchNormInference(State& s, const Args& a, Result& r) {
  a.expectCounts(5, 3);
  BnGeom b = BnGeom::parse(a);
  const float* x = a.input(0, b.size(), "x");
  const float* gamma = a.input(1, b.ch, "gamma");
  const float* beta = a.input(2, b.ch, "beta");
  const float* mean = a.input(3, b.ch, "mean");
  const float* var = a.input(4, b.ch, "variance");
  BnFwd& e = s.cached<BnFwd>(b.key(kBnInfer), [&] {
    auto e = std::make_unique<BnFwd>();
    dnnl::batch_normalization_forward::desc d(dnnl::prop_kind::forward_inference, b.dataMd(),
                                              static_cast<float>(b.eps),
                                              kScaleShift | dnnl::normalization_flags::use_global_stats);
    e->pd = dnnl::batch_normalization_forward::primitive_desc(d, s.engine);
    e->prim = dnnl::batch_normalization_forward(e->pd);
    e->data = b.dataMd();
    e->chan = b.chanMd();
    return e;
  });
  float* y = r.add(b.size());
  e.prim.execute(s.stream, {{DNNL_ARG_SRC, wrap(s, e.data, x)},
                            {DNNL_ARG_DST, wrap(s, e.data, y)},
                            {DNNL_ARG_SCALE, wrap(s, e.chan, gamma)},
                            {DNNL_ARG_SHIFT, wrap(s, e.chan, beta)},
                            {DNNL_ARG_MEAN, wrap(s, e.chan, mean)},
                            {DNNL_ARG_VARIANCE, wrap(s, e.chan, var)}});
  s.stream.wait();
}

// inputs: dy, x, gamma, mean, variance → dx, dgamma, dbeta
void batchNormBackward(State& s, const Args& a, Result& r) {
  a.expectCounts(5, 3);
  BnGeom b = BnGeom::parse(a);
  const float* dy = a.input(0, b.size(), "dy");
  const float* x = a.input(1, b.size(), "x");
  const float* gamma = a.input(2, b.ch, "gamma");
  const float* mean = a.input(3, b.ch, "mean");
  const float* var = a.input(4, b.ch, "variance");
  BnBwd& e = s.cached<BnBwd>(b.key(kBnBwd), [&] {
    auto e = std::make_unique<BnBwd>();
    auto hint = bnTrainPd(s, b);
    dnnl::batch_normalization_backward::desc d(dnnl::prop_kind::backward, b.dataMd(), b.dataMd(),
                                               static_cast<float>(b.eps), kScaleShift);
    e->pd = dnnl::batch_normalization_backward::primitive_desc(d, s.engine, hint);
    e->prim = dnnl::batch_normalization_backward(e->pd);
    e->data = b.dataMd();
    e->chan = b.chanMd();
    e->zeroShift = memory(e->chan, s.engine);
    std::memset(e->zeroShift.get_data_handle(), 0, b.ch * sizeof(float));
    return e;
  });
  float* dx = r.add(b.size());
  float* dgamma = r.add(b.ch);
  float* dbeta = r.add(b.ch);
  e.prim.execute(s.stream, {{DNNL_ARG_SRC, wrap(s, e.data, x)},
                            {DNNL_ARG_DIFF_DST, wrap(s, e.data, dy)},
                            {DNNL_ARG_SCALE, wrap(s, e.chan, gamma)},
                            {DNNL_ARG_SHIFT, e.zeroShift},
                            {DNNL_ARG_MEAN, wrap(s, e.chan, mean)},
                            {DNNL_ARG_VARIANCE, wrap(s, e.chan, var)},
                            {DNNL_ARG_DIFF_SRC, wrap(s, e.data, dx)},
                            {DNNL_ARG_DIFF_SCALE, wrap(s, e.chan, dgamma)},
                            {DNNL_ARG_DIFF_SHIFT, wrap(s, e.chan, dbeta)}});
  s.stream.wait();
}

// ---------------------------------------------------------------------------------------------
// ReLU and ELU. The `use_dst_for_bwd` algorithms compute the gradient from the forward output y,
// which is what the contract passes (dy where y > 0, else dy·(y + alpha) for ELU, 0 for ReLU).

struct EltFwd : CacheEntry {
  dnnl::eltwise_forward::primitive_desc pd;
  dnnl::eltwise_forward prim;
  memory::desc md;
};
struct EltBwd : CacheEntry {
  dnnl::eltwise_backward::primitive_desc pd;
  dnnl::eltwise_backward prim;
  memory::desc md;
};

dnnl::eltwise_forward::primitive_desc eltFwdPd(State& s, dnnl::algorithm alg, int64_t size, float alpha) {
  memory::desc md({size}, dt::f32, tag::a);
  dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_training, alg, md, alpha, 0.f);
  return dnnl::eltwise_forward::primitive_desc(d, s.engine);
}

void eltForward(State& s, const Args& a, Result& r, dnnl::algorithm alg, float alpha, int64_t size) {
  const float* x = a.input(0, size, "x");
  EltFwd& e = s.cached<EltFwd>({kEltFwd, static_cast<int64_t>(alg), size, keyBits(alpha)}, [&] {
    auto e = std::make_unique<EltFwd>();
    e->pd = eltFwdPd(s, alg, size, alpha);
    e->prim = dnnl::eltwise_forward(e->pd);
    e->md = memory::desc({size}, dt::f32, tag::a);
    return e;
  });
  float* y = r.add(size);
  e.prim.execute(s.stream, {{DNNL_ARG_SRC, wrap(s, e.md, x)}, {DNNL_ARG_DST, wrap(s, e.md, y)}});
  s.stream.wait();
}

void eltBackward(State& s, const Args& a, Result& r, dnnl::algorithm alg, float alpha, int64_t size) {
  const float* dy = a.input(0, size, "dy");
  const float* y = a.input(1, size, "y");
  EltBwd& e = s.cached<EltBwd>({kEltBwd, static_cast<int64_t>(alg), size, keyBits(alpha)}, [&] {
    auto e = std::make_unique<EltBwd>();
    memory::desc md({size}, dt::f32, tag::a);
    dnnl::eltwise_backward::desc d(alg, md, md, alpha, 0.f);
    e->pd = dnnl::eltwise_backward::primitive_desc(d, s.engine, eltFwdPd(s, alg, size, alpha));
    e->prim = dnnl::eltwise_backward(e->pd);
    e->md = md;
    return e;
  });
  float* dx = r.add(size);
  e.prim.execute(s.stream, {{DNNL_ARG_DST, wrap(s, e.md, y)},
                            {DNNL_ARG_DIFF_DST, wrap(s, e.md, dy)},
                            {DNNL_ARG_DIFF_SRC, wrap(s, e.md, dx)}});
  s.stream.wait();
}

// relu: x; nums: size
void relu(State& s, const Args& a, Result& r) {
  a.expectCounts(1, 1);
  eltForward(s, a, r, dnnl::algorithm::eltwise_relu_use_dst_for_bwd, 0.f, a.dim(0, "size"));
}
// reluBackward: dy, y; nums: size
void reluBackward(State& s, const Args& a, Result& r) {
  a.expectCounts(2, 1);
  eltBackward(s, a, r, dnnl::algorithm::eltwise_relu_use_dst_for_bwd, 0.f, a.dim(0, "size"));
}
float eluAlpha(const Args& a, size_t i) {
  double alpha = a.real(i, "alpha");
  // oneDNN's dst-based ELU gradient is defined for alpha >= 0 only.
  if (alpha < 0) fail(a, "alpha must be >= 0");
  return static_cast<float>(alpha);
}
// elu: x; nums: alpha, size
void elu(State& s, const Args& a, Result& r) {
  a.expectCounts(1, 2);
  eltForward(s, a, r, dnnl::algorithm::eltwise_elu_use_dst_for_bwd, eluAlpha(a, 0), a.dim(1, "size"));
}
// eluBackward: dy, y; nums: alpha, size
void eluBackward(State& s, const Args& a, Result& r) {
  a.expectCounts(2, 2);
  eltBackward(s, a, r, dnnl::algorithm::eltwise_elu_use_dst_for_bwd, eluAlpha(a, 0), a.dim(1, "size"));
}

// ---------------------------------------------------------------------------------------------
// Pooling. Padded cells never win a max (oneDNN max pooling skips them) and never count in an
// average (pooling_avg_exclude_padding), matching TensorFlow's `same`.

struct PoolGeom {
  int64_t n, ih, iw, c, oh, ow, wh, ww, sh, sw, pt, pl, pb, pr;

  // Numbers in the field order of Pool2DParams.
  static PoolGeom parse(const Args& a) {
    PoolGeom p;
    p.n = a.dim(0, "batch");
    p.ih = a.dim(1, "inHeight");
    p.iw = a.dim(2, "inWidth");
    p.c = a.dim(3, "channels");
    p.oh = a.dim(4, "outHeight");
    p.ow = a.dim(5, "outWidth");
    p.wh = a.dim(6, "windowHeight");
    p.ww = a.dim(7, "windowWidth");
    p.sh = a.dim(8, "strideHeight");
    p.sw = a.dim(9, "strideWidth");
    p.pt = a.dim(10, "padTop", 0);
    p.pl = a.dim(11, "padLeft", 0);
    p.pb = a.dim(12, "padBottom", 0);
    p.pr = a.dim(13, "padRight", 0);
    ConvGeom::checkAxis(a, "height", p.ih, p.wh, 1, p.sh, p.pt, p.pb, p.oh);
    ConvGeom::checkAxis(a, "width", p.iw, p.ww, 1, p.sw, p.pl, p.pr, p.ow);
    // A window made only of padding would have no value (and oneDNN refuses it).
    if (p.pt >= p.wh || p.pb >= p.wh || p.pl >= p.ww || p.pr >= p.ww)
      fail(a, "padding must be smaller than the window");
    return p;
  }
  int64_t xSize() const { return elems({n, ih, iw, c}, "pool input"); }
  int64_t ySize() const { return elems({n, oh, ow, c}, "pool output"); }
  memory::desc srcMd() const { return memory::desc({n, c, ih, iw}, dt::f32, tag::nhwc); }
  memory::desc dstMd() const { return memory::desc({n, c, oh, ow}, dt::f32, tag::nhwc); }
  dnnl::pooling_forward::desc fwdDesc(dnnl::prop_kind prop, dnnl::algorithm alg) const {
    return dnnl::pooling_forward::desc(prop, alg, srcMd(), dstMd(), {sh, sw}, {wh, ww}, {pt, pl}, {pb, pr});
  }
  dnnl::pooling_backward::desc bwdDesc(dnnl::algorithm alg) const {
    return dnnl::pooling_backward::desc(alg, srcMd(), dstMd(), {sh, sw}, {wh, ww}, {pt, pl}, {pb, pr});
  }
  std::vector<int64_t> key(Kind k, dnnl::algorithm alg) const {
    return {k, static_cast<int64_t>(alg), n, ih, iw, c, oh, ow, wh, ww, sh, sw, pt, pl, pb, pr};
  }
};

struct PoolFwd : CacheEntry {
  dnnl::pooling_forward::primitive_desc pd;
  dnnl::pooling_forward prim;
  memory::desc src, dst;
};

struct PoolBwd : CacheEntry {
  dnnl::pooling_forward::primitive_desc fpd;  // the training forward the backward is made for
  dnnl::pooling_backward::primitive_desc pd;
  dnnl::pooling_backward prim;
  memory::desc src, dst;
};

void poolForward(State& s, const Args& a, Result& r, dnnl::algorithm alg) {
  a.expectCounts(1, 14);
  PoolGeom p = PoolGeom::parse(a);
  const float* x = a.input(0, p.xSize(), "x");
  PoolFwd& e = s.cached<PoolFwd>(p.key(kPoolFwd, alg), [&] {
    auto e = std::make_unique<PoolFwd>();
    e->pd = dnnl::pooling_forward::primitive_desc(p.fwdDesc(dnnl::prop_kind::forward_inference, alg), s.engine);
    e->prim = dnnl::pooling_forward(e->pd);
    e->src = p.srcMd();
    e->dst = p.dstMd();
    return e;
  });
  float* y = r.add(p.ySize());
  e.prim.execute(s.stream, {{DNNL_ARG_SRC, wrap(s, e.src, x)}, {DNNL_ARG_DST, wrap(s, e.dst, y)}});
  s.stream.wait();
}

PoolBwd& poolBwdEntry(State& s, const PoolGeom& p, Kind k, dnnl::algorithm alg) {
  return s.cached<PoolBwd>(p.key(k, alg), [&] {
    auto e = std::make_unique<PoolBwd>();
    e->fpd = dnnl::pooling_forward::primitive_desc(p.fwdDesc(dnnl::prop_kind::forward_training, alg), s.engine);
    e->pd = dnnl::pooling_backward::primitive_desc(p.bwdDesc(alg), s.engine, e->fpd);
    e->prim = dnnl::pooling_backward(e->pd);
    e->src = p.srcMd();
    e->dst = p.dstMd();
    return e;
  });
}

// oneDNN's max pool starts every window at the lowest float, so a window holding only NaN and −∞
// comes out as −FLT_MAX, where the contract (the reference) gives the window's first value. Those
// outputs (and any genuine −FLT_MAX: rare, and rescanning it gives it back) are redone by the
// contract's rule: a strict > scan from −∞, NaN never winning, else the first value.
void redoWindowsWithoutWinner(const PoolGeom& p, const float* x, float* y) {
  const float lowest = std::numeric_limits<float>::lowest();
  const int64_t total = p.ySize();
  for (int64_t o = 0; o < total; o++) {
    if (y[o] != lowest) continue;
    const int64_t ch = o % p.c, ow = o / p.c % p.ow, oh = o / (p.c * p.ow) % p.oh, b = o / (p.c * p.ow * p.oh);
    const int64_t h0 = std::max<int64_t>(oh * p.sh - p.pt, 0), h1 = std::min(oh * p.sh - p.pt + p.wh, p.ih);
    const int64_t w0 = std::max<int64_t>(ow * p.sw - p.pl, 0), w1 = std::min(ow * p.sw - p.pl + p.ww, p.iw);
    auto at = [&](int64_t h, int64_t w) { return x[((b * p.ih + h) * p.iw + w) * p.c + ch]; };
    float best = -std::numeric_limits<float>::infinity();
    for (int64_t h = h0; h < h1; h++)
      for (int64_t w = w0; w < w1; w++) best = at(h, w) > best ? at(h, w) : best;
    y[o] = best > -std::numeric_limits<float>::infinity() ? best : at(h0, w0);
  }
}

void maxPool2d(State& s, const Args& a, Result& r) {
  poolForward(s, a, r, dnnl::algorithm::pooling_max);
  PoolGeom p = PoolGeom::parse(a);
  redoWindowsWithoutWinner(p, a.input(0, p.xSize(), "x"), r.out.back()->data);
}
void avgPool2d(State& s, const Args& a, Result& r) {
  poolForward(s, a, r, dnnl::algorithm::pooling_avg_exclude_padding);
}

// Max pool backward over channels [c0, c1) of image b: each window's first maximum (row-major,
// NaN never winning, the first cell for a window with none) receives the window's dy, 64 channels
// at a time. dx rows are zeroed just before the first window that reaches them, so they are
// written while in cache.
XN_CLONES void maxPoolBackwardPart(const PoolGeom& p, const float* dy, const float* x, float* dx, int64_t b, int64_t c0,
                                   int64_t c1) {
  constexpr int64_t kBlock = 64;
  float best[kBlock];
  int64_t arg[kBlock];  // the winner's offset in the image (pixel · channels)
  const float* xb = x + b * p.ih * p.iw * p.c;
  float* dxb = dx + b * p.ih * p.iw * p.c;
  auto zeroRows = [&](int64_t h0, int64_t h1) {
    for (int64_t h = h0; h < h1; ++h)
      for (int64_t w = 0; w < p.iw; ++w) std::fill(dxb + (h * p.iw + w) * p.c + c0, dxb + (h * p.iw + w) * p.c + c1, 0.f);
  };
  int64_t zeroed = 0;
  for (int64_t oh = 0; oh < p.oh; ++oh) {
    const int64_t h0 = std::max<int64_t>(oh * p.sh - p.pt, 0), h1 = std::min(oh * p.sh - p.pt + p.wh, p.ih);
    if (h1 > zeroed) zeroRows(zeroed, h1), zeroed = h1;
    for (int64_t ow = 0; ow < p.ow; ++ow) {
      const int64_t w0 = std::max<int64_t>(ow * p.sw - p.pl, 0), w1 = std::min(ow * p.sw - p.pl + p.ww, p.iw);
      const float* g = dy + ((b * p.oh + oh) * p.ow + ow) * p.c;
      for (int64_t k0 = c0; k0 < c1; k0 += kBlock) {
        const int64_t width = std::min(kBlock, c1 - k0);
        const int64_t first = (h0 * p.iw + w0) * p.c;
        for (int64_t k = 0; k < width; ++k) best[k] = -std::numeric_limits<float>::infinity(), arg[k] = first;
        for (int64_t h = h0; h < h1; ++h)
          for (int64_t w = w0; w < w1; ++w) {
            const int64_t at = (h * p.iw + w) * p.c;
            const float* cell = xb + at + k0;
            for (int64_t k = 0; k < width; ++k) {
              const bool wins = cell[k] > best[k];
              best[k] = wins ? cell[k] : best[k];
              arg[k] = wins ? at : arg[k];
            }
          }
        float* d = dxb + k0;
        for (int64_t k = 0; k < width; ++k) d[arg[k] + k] += g[k0 + k];
      }
    }
  }
  zeroRows(zeroed, p.ih);  // rows no window reaches
}

// inputs: dy, x. Tasks are images, or with fewer images than threads, channel ranges of them
// (multiples of 16 channels: no shared cache lines); each writes its own part of dx. oneDNN's
// backward sent an all-NaN (or −∞) window's gradient elsewhere than the contract's first cell,
// and needed the forward run again for its workspace; this is as fast.
void maxPool2dBackward(State&, const Args& a, Result& r) {
  a.expectCounts(2, 14);
  PoolGeom p = PoolGeom::parse(a);
  const float* dy = a.input(0, p.ySize(), "dy");
  const float* x = a.input(1, p.xSize(), "x");
  float* dx = r.add(p.xSize());
  const int64_t threads = threadsFor(p.xSize());
  const int64_t parts = p.n >= threads ? 1 : std::min<int64_t>((threads + p.n - 1) / p.n, (p.c + 15) / 16);
  const int64_t step = ((p.c + parts - 1) / parts + 15) & ~int64_t(15);
#pragma omp parallel for schedule(dynamic, 1) if (threads > 1)
  for (int64_t t = 0; t < p.n * parts; ++t) {
    const int64_t c0 = t % parts * step;
    if (c0 < p.c) maxPoolBackwardPart(p, dy, x, dx, t / parts, c0, std::min(c0 + step, p.c));
  }
}

// inputs: dy
void avgPool2dBackward(State& s, const Args& a, Result& r) {
  a.expectCounts(1, 14);
  PoolGeom p = PoolGeom::parse(a);
  const float* dy = a.input(0, p.ySize(), "dy");
  PoolBwd& e = poolBwdEntry(s, p, kAvgPoolBwd, dnnl::algorithm::pooling_avg_exclude_padding);
  float* dx = r.add(p.xSize());
  e.prim.execute(s.stream, {{DNNL_ARG_DIFF_DST, wrap(s, e.dst, dy)}, {DNNL_ARG_DIFF_SRC, wrap(s, e.src, dx)}});
  s.stream.wait();
}

// ---------------------------------------------------------------------------------------------
// Matmul: c[m, n] = a·b with either operand optionally transposed, expressed through strides.

struct Matmul : CacheEntry {
  dnnl::matmul::primitive_desc pd;
  dnnl::matmul prim;
  memory::desc a, b, c;
};

// inputs: a, b; nums: m, k, n, transA, transB
void matmul(State& s, const Args& a, Result& r) {
  a.expectCounts(2, 5);
  int64_t m = a.dim(0, "m"), k = a.dim(1, "k"), n = a.dim(2, "n");
  bool ta = a.flag(3, "transA"), tb = a.flag(4, "transB");
  const float* pa = a.input(0, elems({m, k}, "matmul a"), "a");
  const float* pb = a.input(1, elems({k, n}, "matmul b"), "b");
  int64_t cSize = elems({m, n}, "matmul result");
  Matmul& e = s.cached<Matmul>({kMatmul, m, k, n, ta, tb}, [&] {
    auto e = std::make_unique<Matmul>();
    // a is stored [m, k] row-major, or [k, m] when transposed: same logical dims, swapped strides.
    e->a = memory::desc({m, k}, dt::f32, ta ? memory::dims{1, m} : memory::dims{k, 1});
    e->b = memory::desc({k, n}, dt::f32, tb ? memory::dims{1, k} : memory::dims{n, 1});
    e->c = memory::desc({m, n}, dt::f32, memory::dims{n, 1});
    e->pd = dnnl::matmul::primitive_desc(dnnl::matmul::desc(e->a, e->b, e->c), s.engine);
    e->prim = dnnl::matmul(e->pd);
    return e;
  });
  float* c = r.add(cSize);
  e.prim.execute(s.stream, {{DNNL_ARG_SRC, wrap(s, e.a, pa)},
                            {DNNL_ARG_WEIGHTS, wrap(s, e.b, pb)},
                            {DNNL_ARG_DST, wrap(s, e.c, c)}});
  s.stream.wait();
}

}  // namespace

// Which oneDNN implementation a convolution of this shape uses (for benchmarks and reports); with
// `bf16`, the one the `.bf16` kernel runs (a float32 one where it falls back).
std::string describeConv(State& s, const Args& a, int which, bool bf16) {
  ConvGeom c = ConvGeom::parse(a);
  const ConvGeom::Pass passes[3] = {ConvGeom::Pass::kForward, ConvGeom::Pass::kBackwardData, ConvGeom::Pass::kBackwardFilter};
  c.bf16 = bf16 && which >= 0 && which <= 2 && c.bf16Pays(passes[which]);
  if (which >= 0 && which <= 2 && c.runsAsGemm(passes[which])) return kGemmImpl;
  if (which == 2 && c.stridedPointwiseFewChannels()) return kGatherGemmImpl;
  if (which >= 0 && which <= 2 && c.ownDepthwise()) return kOwnDepthwiseImpl;
  if (which >= 0 && which <= 2 && c.bf16 && c.pointwise()) {
    GemmBf16* e = pointwiseBf16(s, c, passes[which]);
    return e ? std::string("matmul:") + e->pd.impl_info_str() : describeConv(s, a, which, false);
  }
  bool f32Instead = which == 0 ? convFwdEntry(s, c).f32Instead
                    : which == 1 ? convBwdDataEntry(s, c).f32Instead
                                 : convBwdWeightsEntry(s, c).f32Instead;
  if (f32Instead) return describeConv(s, a, which, false);
  if (which == 0) return convFwdEntry(s, c).pd.impl_info_str();
  if (which == 1) return convBwdDataEntry(s, c).pd.impl_info_str();
  return convBwdWeightsEntry(s, c).pd.impl_info_str();
}

const char* bf16Hardware() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_bf16:
    case dnnl::cpu_isa::avx512_core_amx: return "native";
    case dnnl::cpu_isa::avx512_core:
    case dnnl::cpu_isa::avx512_core_vnni: return "emulated";
    default: return "unsupported";
  }
}

bool ownBf16Rounding() {
  static const bool native = std::strcmp(bf16Hardware(), "native") == 0;
  return native;
}

void registerDnnlKernels(std::map<std::string, KernelFn>& t) {
  t["conv2d"] = conv2d;
  t["roundBf16Paths"] = roundBf16Paths;
  t["conv2dBackwardInput"] = conv2dBackwardInput;
  t["conv2dBackwardFilter"] = conv2dBackwardFilter;
  // Mixed precision: the same contract, multiplied in bf16 (see the top of this file).
  t["conv2d.bf16"] = conv2dBf16;
  t["conv2dBackwardInput.bf16"] = conv2dBackwardInputBf16;
  t["conv2dBackwardFilter.bf16"] = conv2dBackwardFilterBf16;
  // The contract's batch norm runs on kernels_bn.cc (faster on every measured shape); oneDNN's
  // stays reachable under these names for benchmarks and cross-checks.
  t["batchNormTrain.dnnl"] = batchNormTrain;
  t["batchNormInference.dnnl"] = batchNormInference;
  t["batchNormBackward.dnnl"] = batchNormBackward;
  // ReLU runs as a plain loop (kernels_loops.cc); oneDNN's stays reachable for benchmarks.
  t["relu.dnnl"] = relu;
  t["reluBackward.dnnl"] = reluBackward;
  t["elu"] = elu;
  t["eluBackward"] = eluBackward;
  t["maxPool2d"] = maxPool2d;
  t["maxPool2dBackward"] = maxPool2dBackward;
  t["avgPool2d"] = avgPool2d;
  t["avgPool2dBackward"] = avgPool2dBackward;
  t["matmul"] = matmul;
}

}  // namespace xnative
