// Compiled inference plans (format and rules in plan.h).
#include "plan.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <memory>
#include <unordered_map>

namespace xnative {

namespace {

using dnnl::memory;
using tag = memory::format_tag;
using dt = memory::data_type;

std::atomic<int64_t> plansAlive{0};

[[noreturn]] void bad(const std::string& m) { throw KernelError("inference plan: " + m); }

// The number an enum of the spec format (plan.h) stands for.
template <typename E>
constexpr int code(E e) {
  return static_cast<int>(e);
}

// Reads the spec front to back; every number is checked before it becomes a size or an index.
class SpecReader {
 public:
  explicit SpecReader(const std::vector<double>& v) : v_(v) {}
  double real(const char* what) {
    if (pos_ >= v_.size()) bad(std::string("spec ends early (expected ") + what + ")");
    double x = v_[pos_++];
    if (!std::isfinite(x)) bad(std::string(what) + " is not finite");
    return x;
  }
  int64_t integer(const char* what, int64_t lo, int64_t hi) {
    double x = real(what);
    if (x != std::floor(x) || x < static_cast<double>(lo) || x > static_cast<double>(hi))
      bad(std::string(what) + " must be an integer in [" + std::to_string(lo) + ", " + std::to_string(hi) + "], got " +
          std::to_string(x));
    return static_cast<int64_t>(x);
  }
  bool done() const { return pos_ == v_.size(); }

 private:
  const std::vector<double>& v_;
  size_t pos_ = 0;
};

constexpr int64_t kMaxDim = 1 << 24;

struct Value {
  memory::dims dims;  // oneDNN's logical dims: {N, C, H, W} or {N, features}
  memory::desc md;
  int storage;
  int lastUse = -1;   // step index of the last read
  float scale = 0.f;  // int8 plans: a quantized value (u8/s8 in md) is real = scale · q; 0 for real values
};

struct Storage {
  size_t bytes = 0;
  int first = 0, last = 0;
  bool external = false;  // the caller's input buffer, not in the arena
  size_t offset = 0;
};

struct Step {
  std::string what;
  dnnl::primitive prim;
  std::vector<std::pair<int, int>> valueArgs;  // (DNNL_ARG_*, value)
  std::unordered_map<int, memory> fixedArgs;   // weights, bias, batch-norm parameters
  memory::desc scratchpad;
  int overwrites = -1;  // value whose memory this step adds into (sum post-op)
};

struct WeightSlot {
  bool used = false;
  size_t length = 0;
  memory::desc user;
  memory dst;
  dnnl::reorder toDst;
};

std::unique_ptr<Buffer> bytesBuffer(size_t bytes) {
  return allocBuffer(static_cast<int64_t>((bytes + sizeof(float) - 1) / sizeof(float)), false);
}

size_t round64(size_t n) { return (n + 63) / 64 * 64; }

// A layout as oneDNN's format tags spell it, e.g. "f32 nhwc", "f32 nChw16c" (logical dims
// ordered by decreasing stride, then the inner blocks), for plan descriptions.
std::string layoutName(const memory::desc& md) {
  const dnnl_memory_desc_t& d = md.data;
  std::string type = d.data_type == dnnl_bf16 ? "bf16"
                     : d.data_type == dnnl_f32  ? "f32"
                     : d.data_type == dnnl_u8   ? "u8"
                     : d.data_type == dnnl_s8   ? "s8"
                                                : "?";
  if (d.format_kind != dnnl_blocked || d.ndims < 1 || d.ndims > 6) return type + " other";
  const char* names = d.ndims == 4 ? "nchw" : d.ndims == 2 ? "nc" : "abcdef";
  const dnnl_blocking_desc_t& b = d.format_desc.blocking;
  std::vector<int> order(d.ndims);
  for (int i = 0; i < d.ndims; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int x, int y) { return b.strides[x] > b.strides[y]; });
  std::string s;
  for (int i : order) {
    bool blocked = false;
    for (int k = 0; k < b.inner_nblks; ++k) blocked = blocked || b.inner_idxs[k] == i;
    s += blocked ? static_cast<char>(names[i] - 'a' + 'A') : names[i];
  }
  for (int k = 0; k < b.inner_nblks; ++k) s += std::to_string(b.inner_blks[k]) + names[b.inner_idxs[k]];
  return type + " " + s;
}

bool isInt8(dt t) { return t == dt::u8 || t == dt::s8; }

// The same layout with another element type (activations only: no compensation extras).
memory::desc withType(const memory::desc& md, dt type) {
  dnnl_memory_desc_t d = md.data;
  d.data_type = memory::convert_to_c(type);
  return memory::desc(d);
}

std::string dimsText(const memory::dims& d) {
  std::string s;
  for (size_t i = 0; i < d.size(); ++i) s += (i ? "×" : "") + std::to_string(d[i]);
  return s;
}

}  // namespace

struct Plan {
  std::vector<Value> values;
  std::vector<Storage> storages;
  std::vector<Step> steps;
  std::vector<std::unordered_map<int, memory>> args;  // per step, built once
  std::vector<WeightSlot> weights;
  std::vector<std::unique_ptr<Buffer>> owned;  // arena, scratchpad, reordered weights
  memory input, output;                          // the caller's buffers, handles set per run
  int64_t inputSize = 0, outputSize = 0;
  int64_t arenaBytes = 0, weightBytes = 0, scratchpadBytes = 0;
  bool int8 = false;  // weights quantized with scales baked into the primitives: never re-read
  Plan() { ++plansAlive; }
  ~Plan() { --plansAlive; }
};

namespace {

class Builder {
 public:
  Builder(State& s, Plan& p, const std::vector<WeightArray>& w) : s_(s), p_(p), w_(w) {}

  void build(const std::vector<double>& spec) {
    SpecReader r(spec);
    // The header, in HeaderField order (plan.h).
    if (r.integer("format version", kPlanFormatVersion, kPlanFormatVersion) != kPlanFormatVersion) bad("unknown format");
    n_ = r.integer("batch", 1, kMaxDim);
    int64_t h = r.integer("height", 1, kMaxDim), w = r.integer("width", 1, kMaxDim), c = r.integer("channels", 1, kMaxDim);
    int64_t precision = r.integer("precision", code(Precision::Fp32), code(Precision::Int8));
    act_ = precision == code(Precision::Bf16) ? dt::bf16 : dt::f32;
    p_.int8 = precision == code(Precision::Int8);
    blocked_ = r.integer("layout", 0, 1) == 1 && precision == code(Precision::Fp32);
    int64_t stepCount = r.integer("step count", 1, 1 << 20);
    int64_t outputSpec = r.integer("output value", 1, stepCount);
    p_.weights.resize(w_.size());
    if (p_.int8) readValueTable(r, stepCount);

    p_.inputSize = elems({n_, h, w, c}, "plan input");
    memory::desc inMd({n_, c, h, w}, dt::f32, tag::nhwc);
    p_.input = memory(inMd, s_.engine, nullptr);
    p_.storages.push_back({inMd.get_size(), 0, 0, true, 0});
    p_.values.push_back({{n_, c, h, w}, inMd, 0});
    specToValue_.push_back(settle(0));

    for (int64_t i = 0; i < stepCount; ++i) {
      auto kind = static_cast<Op>(r.integer("step kind", code(Op::Conv), code(Op::BatchNorm)));
      int v;
      switch (kind) {
        case Op::Conv: v = conv(r); break;
        case Op::Eltwise: v = eltwiseStep(r); break;
        case Op::Pool: v = pool(r); break;
        case Op::GlobalPool: v = globalPool(r); break;
        case Op::Add: v = add(r); break;
        case Op::Concat: v = concat(r); break;
        case Op::Dense: v = dense(r); break;
        case Op::Softmax: v = softmax(r); break;
        case Op::BatchNorm: v = batchNorm(r); break;
        default: bad("unknown step kind");
      }
      specToValue_.push_back(settle(v));
    }
    if (!r.done()) bad("spec has numbers after the last step");
    for (size_t i = 0; i < w_.size(); ++i)
      if (!p_.weights[i].used) bad("weight array " + std::to_string(i) + " is not used by any step");

    // The output, converted to the public layout (NHWC or [batch, features], float32).
    const Value& out = p_.values[specToValue_[outputSpec]];
    memory::desc userOut(out.dims, dt::f32, out.dims.size() == 4 ? tag::nhwc : tag::nc);
    p_.outputSize = static_cast<int64_t>(userOut.get_size() / sizeof(float));
    p_.output = memory(userOut, s_.engine, nullptr);
    int outValue = specToValue_[outputSpec];
    dnnl::reorder::primitive_desc rpd(s_.engine, out.md, s_.engine, userOut, reorderAttr(out, userOut));
    Step st;
    st.what = "output reorder";
    st.prim = dnnl::reorder(rpd);
    st.valueArgs = {{DNNL_ARG_FROM, outValue}};
    st.fixedArgs[DNNL_ARG_TO] = p_.output;
    st.scratchpad = rpd.scratchpad_desc();
    st.what += " → " + std::string(rpd.impl_info_str());
    addStep(std::move(st));

    layOut();
  }

 private:
  State& s_;
  Plan& p_;
  const std::vector<WeightArray>& w_;
  int64_t n_ = 0;
  dt act_ = dt::f32;
  bool blocked_ = false;  // layout 1: pointwise and depthwise convolutions over nChw16c (choose)
  std::vector<int> specToValue_;
  std::vector<std::pair<std::pair<int, memory::desc>, int>> converted_;
  std::vector<std::pair<float, bool>> quant_;  // int8 plans: (scale, unsigned) per spec value; scale 0: fp32

  void readValueTable(SpecReader& r, int64_t stepCount) {
    for (int64_t i = 0; i <= stepCount; ++i) {
      double scale = r.real("value scale");
      if (scale < 0 || (scale > 0 && !(scale >= 1e-30 && scale <= 1e30))) bad("value scale must be 0 or in [1e-30, 1e30]");
      bool unsign = r.integer("value unsigned", 0, 1) == 1;
      quant_.push_back({static_cast<float>(scale), unsign});
    }
  }

  // The quantization the spec gives the value being defined now (int8 plans), or scale 0.
  std::pair<float, bool> quantHere() const {
    size_t k = specToValue_.size();
    return p_.int8 ? quant_[k] : std::pair<float, bool>{0.f, false};
  }

  static dt int8Type(bool unsign) { return unsign ? dt::u8 : dt::s8; }

  // A reorder's attributes: scales when it quantizes or dequantizes (real = scale · q).
  dnnl::primitive_attr reorderAttr(const Value& from, const memory::desc& to) {
    dnnl::primitive_attr a = attr();
    bool qFrom = isInt8(from.md.data_type()), qTo = isInt8(to.data_type());
    if (qFrom && !qTo) a.set_output_scales(0, {from.scale});
    if (!qFrom && qTo) bad("internal: a real value reordered to int8 without its scale");
    if (qFrom && qTo && from.md.data_type() != to.data_type()) bad("internal: reorder between u8 and s8");
    return a;
  }

  // After a step defined value `v` for the next spec value: in int8 plans a value with a scale is
  // stored quantized (a reorder if the step computed it in fp32). Returns the value to refer to.
  int settle(int v) {
    auto [scale, unsign] = quantHere();
    if (scale == 0.f) {
      if (isInt8(p_.values[v].md.data_type())) bad("internal: a quantized value without a scale");
      return v;
    }
    const Value x = p_.values[v];  // a copy: newValue below may move the values
    if (isInt8(x.md.data_type())) {
      if (x.scale != scale || x.md.data_type() != int8Type(unsign)) bad("internal: a quantized step's scale differs from its value's");
      return v;
    }
    memory::desc want(x.dims, int8Type(unsign), x.dims.size() == 4 ? tag::nhwc : tag::nc);
    dnnl::primitive_attr a = attr();
    a.set_output_scales(0, {1.f / scale});
    dnnl::reorder::primitive_desc rpd(s_.engine, x.md, s_.engine, want, a);
    int out = newValue(x.dims, want);
    p_.values[out].scale = scale;
    Step st;
    st.what = "quantize " + dimsText(x.dims) + " → " + std::string(rpd.impl_info_str()) + " [" + layoutName(want) + "]";
    st.prim = dnnl::reorder(rpd);
    st.valueArgs = {{DNNL_ARG_FROM, v}, {DNNL_ARG_TO, out}};
    st.scratchpad = rpd.scratchpad_desc();
    addStep(std::move(st));
    return out;
  }

  // `v` as real numbers (fp32 in its own layout): itself, or a dequantized copy.
  int real(int v) {
    const memory::desc& md = p_.values[v].md;
    return isInt8(md.data_type()) ? as(v, withType(md, dt::f32)) : v;
  }

  dnnl::primitive_attr attr(const dnnl::post_ops* po = nullptr) {
    dnnl::primitive_attr a;
    a.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    if (po) a.set_post_ops(*po);
    return a;
  }

  int valueRef(SpecReader& r, const char* what) {
    int64_t v = r.integer(what, 0, static_cast<int64_t>(specToValue_.size()) - 1);
    return specToValue_[v];
  }

  int weightRef(SpecReader& r, const char* what, bool optional) {
    int64_t i = r.integer(what, optional ? -1 : 0, static_cast<int64_t>(w_.size()) - 1);
    return static_cast<int>(i);
  }

  // Every value's size goes through the overflow-checked count before oneDNN sizes its memory.
  int newValue(const memory::dims& dims, const memory::desc& md) {
    elems(dims, "plan value");
    p_.storages.push_back({md.get_size(), static_cast<int>(p_.steps.size()), 0, false, 0});
    p_.values.push_back({dims, md, static_cast<int>(p_.storages.size()) - 1});
    return static_cast<int>(p_.values.size()) - 1;
  }

  int aliasValue(int of) {
    Value v = p_.values[of];
    v.lastUse = -1;
    p_.values.push_back(v);
    return static_cast<int>(p_.values.size()) - 1;
  }

  int addStep(Step st) {
    int index = static_cast<int>(p_.steps.size());
    for (auto& [arg, v] : st.valueArgs) {
      Value& val = p_.values[v];
      val.lastUse = std::max(val.lastUse, index);
      Storage& sto = p_.storages[val.storage];
      sto.last = std::max(sto.last, index);
    }
    p_.steps.push_back(std::move(st));
    return index;
  }

  // `v` in layout `want`: itself, or a converted copy (made once per value and layout).
  int as(int v, const memory::desc& want) {
    if (p_.values[v].md == want) return v;
    for (auto& [key, copy] : converted_)
      if (key.first == v && key.second == want) return copy;
    dnnl::reorder::primitive_desc rpd(s_.engine, p_.values[v].md, s_.engine, want, reorderAttr(p_.values[v], want));
    int out = newValue(p_.values[v].dims, want);
    if (isInt8(want.data_type())) p_.values[out].scale = p_.values[v].scale;
    Step st;
    st.what = "reorder " + dimsText(p_.values[v].dims) + " → " + std::string(rpd.impl_info_str());
    st.prim = dnnl::reorder(rpd);
    st.valueArgs = {{DNNL_ARG_FROM, v}, {DNNL_ARG_TO, out}};
    st.scratchpad = rpd.scratchpad_desc();
    addStep(std::move(st));
    converted_.push_back({{v, want}, out});
    return out;
  }

  // Copies weight array `index` (Keras layout `user`) into plan memory of layout `want`.
  memory weight(int index, const memory::desc& user, const memory::desc& want, const char* what) {
    WeightSlot& slot = claim(index, user.get_size() / sizeof(float), what);
    slot.user = user;
    slot.dst = ownedCopy(w_[index].data, user, want, dnnl::primitive_attr());
    slot.toDst = dnnl::reorder(dnnl::reorder::primitive_desc(s_.engine, user, s_.engine, want));
    return slot.dst;
  }

  static dnnl::algorithm eltwiseAlg(int64_t alg) {
    return alg == code(EltwiseAlg::Relu) ? dnnl::algorithm::eltwise_relu : dnnl::algorithm::eltwise_elu;
  }

  struct PostSpec {
    bool sum;
    int64_t alg;
    double alpha;
  };

  // Post-ops: (Eltwise, alg, alpha) or (Sum, 0, 0), checked.
  std::vector<PostSpec> readPosts(SpecReader& r, bool allowSum) {
    int64_t count = r.integer("post-op count", 0, 4);
    std::vector<PostSpec> posts;
    for (int64_t i = 0; i < count; ++i) {
      int64_t kind = r.integer("post-op kind", code(PostKind::Eltwise), code(allowSum ? PostKind::Sum : PostKind::Eltwise));
      bool eltwise = kind == code(PostKind::Eltwise);
      int64_t alg = r.integer("post-op algorithm", eltwise ? code(EltwiseAlg::Relu) : 0, eltwise ? code(EltwiseAlg::Elu) : 0);
      double alpha = r.real("post-op alpha");
      if (!eltwise && std::any_of(posts.begin(), posts.end(), [](const PostSpec& p) { return p.sum; })) bad("two sum post-ops");
      if (alg == code(EltwiseAlg::Elu) && !(alpha > 0)) bad("elu alpha must be positive");
      posts.push_back({!eltwise, alg, alpha});
    }
    return posts;
  }

  static bool hasElu(const std::vector<PostSpec>& posts) {
    return std::any_of(posts.begin(), posts.end(), [](const PostSpec& p) { return !p.sum && p.alg == code(EltwiseAlg::Elu); });
  }

  // How an int8 step's post-ops see its result. With ReLU and sum only, in output units (ReLU
  // commutes with the positive scales); with an ELU, in real units, requantized by a last linear
  // post-op (`realUnits`).
  struct QuantPosts {
    bool on = false, realUnits = false;
    float outScale = 1.f, sumValueScale = 1.f;
    dt sumType = dt::undef;
  };

  void appendPosts(const std::vector<PostSpec>& posts, dnnl::post_ops& po, std::string& what, const QuantPosts& q) {
    for (const PostSpec& p : posts) {
      if (p.sum) {
        if (q.on)
          po.append_sum(q.realUnits ? q.sumValueScale : q.sumValueScale / q.outScale, q.sumType);
        else
          po.append_sum(1.f);
        what += " +sum";
      } else {
        po.append_eltwise(1.f, eltwiseAlg(p.alg), static_cast<float>(p.alpha), 0.f);
        what += p.alg == code(EltwiseAlg::Relu) ? " +relu" : " +elu";
      }
    }
    if (q.on && q.realUnits) po.append_eltwise(1.f, dnnl::algorithm::eltwise_linear, 1.f / q.outScale, 0.f);
  }

  // An int8 step's output scales: input scale × weight scale per output channel, over the output
  // scale unless the post-ops run in real units.
  static std::vector<float> outputScales(float inScale, const std::vector<float>& wScales, const QuantPosts& q) {
    std::vector<float> s(wScales.size());
    for (size_t c = 0; c < s.size(); ++c) s[c] = inScale * wScales[c] / (q.realUnits ? 1.f : q.outScale);
    return s;
  }

  const Value& image(int v, const char* what) {
    if (p_.values[v].dims.size() != 4) bad(std::string(what) + ": input is not an image [batch, height, width, channels]");
    return p_.values[v];
  }

  static int64_t outSize(int64_t in, int64_t k, int64_t d, int64_t s, int64_t p0, int64_t p1, const char* what) {
    int64_t span = in + p0 + p1 - ((k - 1) * d + 1);
    if (span < 0) bad(std::string(what) + ": window larger than the padded input");
    return span / s + 1;
  }

  // A convolution's geometry as its spec gives it (the fields of ConvField, in order).
  struct ConvGeometry {
    int64_t ih, iw, ic, oh, ow, oc, kh, kw, sh, sw, dh, dw, pt, pl, pb, pr, groups;
  };

  ConvGeometry convGeometry(SpecReader& r) {
    int64_t g[code(ConvField::count)];
    for (int i = 0; i < code(ConvField::count); ++i) {
      bool pad = i >= code(ConvField::padT) && i <= code(ConvField::padR);
      g[i] = r.integer(kConvFieldNames[i], pad ? 0 : 1, kMaxDim);
    }
    using F = ConvField;
    auto f = [&](F field) { return g[code(field)]; };
    return {f(F::inH), f(F::inW), f(F::inC), f(F::outH), f(F::outW), f(F::outC), f(F::kH), f(F::kW), f(F::sH),
            f(F::sW),  f(F::dH),  f(F::dW),  f(F::padT), f(F::padL), f(F::padB), f(F::padR),
            f(F::groups)};
  }

  // Checks the input against the geometry, and the geometry against itself.
  void checkConv(const Value& x, const ConvGeometry& c) {
    if (x.dims != memory::dims{n_, c.ic, c.ih, c.iw})
      bad("conv input is " + dimsText(x.dims) + ", the convolution expects " + dimsText({n_, c.ic, c.ih, c.iw}));
    if (c.ic % c.groups || c.oc % c.groups) bad("conv groups must divide the channels");
    if (outSize(c.ih, c.kh, c.dh, c.sh, c.pt, c.pb, "conv") != c.oh || outSize(c.iw, c.kw, c.dw, c.sw, c.pl, c.pr, "conv") != c.ow)
      bad("conv output size does not follow from its input, window, stride and padding");
    elems({c.kh, c.kw, c.ic / c.groups, c.oc}, "conv filter");
    elems({n_, c.oc, c.oh, c.ow}, "conv output");
  }

  static std::string convName(const ConvGeometry& c, bool q, bool bias) {
    return std::string(q ? "int8 " : "") + "conv " + std::to_string(c.kh) + "×" + std::to_string(c.kw) + "/" + std::to_string(c.sh) +
           (c.groups > 1 ? " g" + std::to_string(c.groups) : "") + " " + std::to_string(c.ic) + "→" + std::to_string(c.oc) + " at " +
           std::to_string(c.oh) + "×" + std::to_string(c.ow) + (bias ? " +bias" : "");
  }

  // The convolution's descriptors besides its source and destination.
  struct ConvDescs {
    memory::desc wAny, wUser, bias;
    memory::dims strides, dil, padL, padR;
  };

  static ConvDescs convDescs(const ConvGeometry& c, dt wType) {
    const bool grouped = c.groups != 1;
    memory::dims wDims = grouped ? memory::dims{c.groups, c.oc / c.groups, c.ic / c.groups, c.kh, c.kw} : memory::dims{c.oc, c.ic, c.kh, c.kw};
    return {memory::desc(wDims, wType, tag::any),
            memory::desc(wDims, dt::f32, grouped ? tag::hwigo : tag::hwio),
            memory::desc({c.oc}, dt::f32, tag::a),
            {c.sh, c.sw},
            {c.dh - 1, c.dw - 1},
            {c.pt, c.pl},
            {c.pb, c.pr}};
  }

  // Every implementation of the convolution from a source of layout srcMd to outMd, oneDNN's
  // first choice first (all of them only in a blocked plan; else the first). The iteration
  // happens while the op descriptor lives: the iterator points into it.
  std::vector<dnnl::convolution_forward::primitive_desc> convImplementations(const memory::desc& srcMd, const memory::desc& outMd,
                                                                            const ConvDescs& d, bool bias,
                                                                            const dnnl::primitive_attr& a) {
    using Desc = dnnl::convolution_forward::desc;
    const auto prop = dnnl::prop_kind::forward_inference;
    const auto alg = dnnl::algorithm::convolution_direct;
    Desc desc = bias ? Desc(prop, alg, srcMd, d.wAny, d.bias, outMd, d.strides, d.dil, d.padL, d.padR)
                     : Desc(prop, alg, srcMd, d.wAny, outMd, d.strides, d.dil, d.padL, d.padR);
    std::vector<dnnl::convolution_forward::primitive_desc> all;
    dnnl::convolution_forward::primitive_desc pd(desc, a, s_.engine);
    do all.push_back(pd);  // each copy keeps its own implementation
    while (blocked_ && pd.next_impl());
    return all;
  }

  // The convolution's primitive: in a blocked plan chosen among the candidates (see choose),
  // else oneDNN's first choice for `any` layouts.
  dnnl::convolution_forward::primitive_desc convPrimitive(const Value& x, dt srcType, const ConvGeometry& c, const ConvDescs& d,
                                                          bool bias, const memory::desc& dstMd, bool sum,
                                                          const dnnl::primitive_attr& a) {
    std::vector<dnnl::convolution_forward::primitive_desc> all;
    const memory::dims inDims{n_, c.ic, c.ih, c.iw}, outDims{n_, c.oc, c.oh, c.ow};
    if (blocked_) {
      // Candidates for the input's present layout and for nChw16c, each with the output in the
      // same layout (with `any` output some kernels, e.g. jit_dw, settle on a layout that then
      // refuses the input), then for any layout.
      for (tag t : {tag::nhwc, tag::nChw16c}) {
        memory::desc srcT(inDims, act_, t);
        if (!(srcT == x.md || t == tag::nChw16c)) continue;
        try {
          for (auto& i : convImplementations(srcT, sum ? dstMd : memory::desc(outDims, act_, t), d, bias, a)) all.push_back(i);
        } catch (const dnnl::error&) {
          // nothing reads that layout
        }
      }
    }
    for (auto& i : convImplementations(memory::desc(inDims, srcType, tag::any), dstMd, d, bias, a)) all.push_back(i);
    const bool pointwise = c.kh == 1 && c.kw == 1 && c.sh == 1 && c.sw == 1 && c.groups == 1;
    const bool depthwise = c.groups > 1 && c.groups == c.ic && c.groups == c.oc;
    return blocked_ ? choose(all, x.md, pointwise, depthwise) : all.front();
  }

  int conv(SpecReader& r) {
    int in = valueRef(r, "conv input");
    const ConvGeometry c = convGeometry(r);
    int wi = weightRef(r, "conv weight index", false);
    int bi = weightRef(r, "conv bias index", true);
    int64_t sumSpec = r.integer("conv sum value", -1, static_cast<int64_t>(specToValue_.size()) - 1);
    int si = p_.int8 ? weightRef(r, "conv weight scales index", true) : -1;
    int sumV = sumSpec >= 0 ? specToValue_[sumSpec] : -1;
    const bool q = si >= 0;
    const float outScale = quantHere().first;
    if (q) {
      if (!isInt8(p_.values[in].md.data_type())) bad("int8 conv: its input is not quantized");
      if (outScale == 0.f) bad("int8 conv: its value has no scale");
      if (sumV >= 0 && !isInt8(p_.values[sumV].md.data_type())) bad("int8 conv: its sum value is not quantized");
    } else {
      in = real(in);
      if (sumV >= 0) sumV = real(sumV);
    }
    const Value x = image(in, "conv");  // a copy: newValue below may move the values
    checkConv(x, c);
    const memory::dims outDims{n_, c.oc, c.oh, c.ow};
    std::string what = convName(c, q, bi >= 0);
    const dt dstType = q ? int8Type(quantHere().second) : act_;
    std::vector<PostSpec> posts = readPosts(r, true);
    bool sum = std::any_of(posts.begin(), posts.end(), [](const PostSpec& p) { return p.sum; });
    if (sum != (sumV >= 0)) bad("conv: a sum post-op needs a sum value and the other way round");
    QuantPosts qp;
    if (q) qp = {true, hasElu(posts), outScale, sumV >= 0 ? p_.values[sumV].scale : 1.f, sumV >= 0 ? p_.values[sumV].md.data_type() : dt::undef};
    dnnl::post_ops po;
    appendPosts(posts, po, what, qp);
    memory::desc dstMd = memory::desc(outDims, dstType, tag::any);
    if (sumV >= 0) {
      const Value& b = p_.values[sumV];
      if (b.dims != outDims) bad("conv sum value is " + dimsText(b.dims) + ", the convolution makes " + dimsText(outDims));
      if (p_.storages[b.storage].external) bad("conv cannot add into the plan's input");
      dstMd = withType(b.md, dstType);
    }
    const ConvDescs d = convDescs(c, q ? dt::s8 : act_);
    dnnl::primitive_attr convAttr = attr(&po);
    std::vector<float> wScales;
    if (q) {
      wScales = weightScales(si, c.oc);
      convAttr.set_output_scales(1 << 1, outputScales(x.scale, wScales, qp));  // per output channel (dst dim 1)
    }
    dnnl::convolution_forward::primitive_desc pd = convPrimitive(x, q ? x.md.data_type() : act_, c, d, bi >= 0, dstMd, sumV >= 0, convAttr);
    Step st;
    st.what = what + ": " + pd.impl_info_str() + " [" + layoutName(pd.src_desc()) + " → " + layoutName(pd.dst_desc()) + "]";
    st.prim = dnnl::convolution_forward(pd);
    if (q) {
      st.fixedArgs[DNNL_ARG_WEIGHTS] = int8Weights(wi, d.wUser, pd.weights_desc(), wScales, c.groups > 1);
      if (bi >= 0) st.fixedArgs[DNNL_ARG_BIAS] = accumulatorBias(bi, d.bias, pd.bias_desc(), x.scale, wScales);
    } else {
      st.fixedArgs[DNNL_ARG_WEIGHTS] = weight(wi, d.wUser, pd.weights_desc(), "conv weights");
      if (bi >= 0) st.fixedArgs[DNNL_ARG_BIAS] = weight(bi, d.bias, pd.bias_desc(), "conv bias");
    }
    st.scratchpad = pd.scratchpad_desc();
    return addConvStep(std::move(st), as(in, pd.src_desc()), sumV, outDims, pd.dst_desc(), q ? outScale : 0.f);
  }

  // Adds the convolution's step, writing a new value, or adding into sumV (then aliased as the
  // result); returns the value it makes.
  int addConvStep(Step st, int src, int sumV, const memory::dims& outDims, const memory::desc& dst, float scale) {
    if (sumV < 0) {
      int out = newValue(outDims, dst);
      p_.values[out].scale = scale;
      st.valueArgs = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, out}};
      addStep(std::move(st));
      return out;
    }
    if (p_.values[src].storage == p_.values[sumV].storage) bad("conv cannot add into its own input");
    int out = aliasValue(sumV);
    p_.values[out].md = dst;
    p_.values[out].scale = scale;
    st.overwrites = sumV;
    // The old value is read (added to) by this step.
    st.valueArgs = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, sumV}};
    int index = addStep(std::move(st));
    p_.steps[index].valueArgs[1].second = out;
    return out;
  }

  // Weight array `index`: `count` per-output-channel weight scales, each finite and positive.
  std::vector<float> weightScales(int index, int64_t count) {
    WeightSlot& slot = claim(index, static_cast<size_t>(count), "conv weight scales");
    std::vector<float> s(w_[index].data, w_[index].data + count);
    for (float v : s)
      if (!(std::isfinite(v) && v > 0)) bad("conv weight scales must be finite and positive");
    slot.user = memory::desc({count}, dt::f32, tag::a);
    return s;
  }

  // Marks weight array `index` used, checking that it has `length` values.
  WeightSlot& claim(int index, size_t length, const char* what) {
    if (index < 0 || static_cast<size_t>(index) >= w_.size()) bad(std::string(what) + ": weight index out of range");
    WeightSlot& slot = p_.weights[index];
    if (slot.used) bad(std::string(what) + ": weight array " + std::to_string(index) + " is used twice");
    if (w_[index].length != length)
      bad(std::string(what) + ": weight array " + std::to_string(index) + " has " + std::to_string(w_[index].length) +
          " values, the layer needs " + std::to_string(length));
    slot.used = true;
    slot.length = length;
    return slot;
  }

  // Runs a reorder from host floats (layout `user`) into new plan memory of layout `want`.
  memory ownedCopy(const float* data, const memory::desc& user, const memory::desc& want, const dnnl::primitive_attr& a) {
    auto buf = bytesBuffer(want.get_size());
    memory dst(want, s_.engine, buf->data);
    p_.weightBytes += static_cast<int64_t>(want.get_size());
    p_.owned.push_back(std::move(buf));
    memory src(user, s_.engine, const_cast<float*>(data));
    dnnl::reorder(dnnl::reorder::primitive_desc(s_.engine, user, s_.engine, want, a)).execute(s_.stream, src, dst);
    s_.stream.wait();
    return dst;
  }

  // An int8 convolution's kernel: q = round(w / scale[c]) per output channel, in oneDNN's s8 layout.
  memory int8Weights(int index, const memory::desc& user, const memory::desc& want, const std::vector<float>& scales,
                     bool grouped) {
    WeightSlot& slot = claim(index, user.get_size() / sizeof(float), "conv weights");
    slot.user = user;
    std::vector<float> inverse(scales.size());
    for (size_t c = 0; c < scales.size(); ++c) inverse[c] = 1.f / scales[c];
    dnnl::primitive_attr a;
    a.set_output_scales(grouped ? 0b11 : 0b1, inverse);  // the output channel: (g, oc/g) or oc
    return ownedCopy(w_[index].data, user, want, a);
  }

  // oneDNN adds an int8 convolution's bias to the int32 accumulator before the output scales, so
  // the bias goes in accumulator units: bias[c] / (inScale · weightScale[c]), rounded to a whole
  // step as the contract's int32 bias is (quant-types.ts int32Bias: JavaScript's Math.round,
  // halves up; the whole bias unrounded when a channel's value is no finite int32).
  memory accumulatorBias(int index, const memory::desc& user, const memory::desc& want, float inScale,
                         const std::vector<float>& scales) {
    WeightSlot& slot = claim(index, scales.size(), "conv bias");
    slot.user = user;
    std::vector<float> b(w_[index].data, w_[index].data + scales.size());
    std::vector<double> steps(b.size());
    bool whole = true;
    for (size_t c = 0; c < b.size(); ++c) {
      const float step = inScale * scales[c];
      steps[c] = std::floor(static_cast<double>(b[c]) / step + 0.5);
      whole = whole && std::isfinite(steps[c]) && std::fabs(steps[c]) <= 2147483647.0;
    }
    for (size_t c = 0; c < b.size(); ++c) b[c] = whole ? static_cast<float>(steps[c]) : b[c] / (inScale * scales[c]);
    return ownedCopy(b.data(), user, want, dnnl::primitive_attr());
  }

  // Which of oneDNN's implementations a convolution runs in a blocked plan. oneDNN's first
  // choice for `any` layouts is brgconv over channels-last for every fp32 convolution here; the
  // older jit_1x1 and jit_dw kernels over channel blocks of 16 (nChw16c) run stride-1 pointwise
  // and depthwise convolutions faster (728→728 at 19×19, batch 8: 9.4 vs 11.3 ms; depthwise at
  // batch 1: 0.11 vs 0.14 ms; best of 25 in src/bench/native/conv_impls.cc). Xception's whole plan:
  // batch 8 3–16% faster, batch 1 within ±4% (interleaved rounds, one process).
  // So those take jit_1x1 / jit_dw over nChw16c (the activations then stay blocked), and every
  // other convolution the first optimized implementation that reads its input as it is (no
  // reorder), else oneDNN's first choice. Regular 3×3 convolutions are slower blocked, which is
  // why TypeScript asks for this layout only for networks with depthwise convolutions.
  dnnl::convolution_forward::primitive_desc choose(const std::vector<dnnl::convolution_forward::primitive_desc>& all,
                                                   const memory::desc& inMd, bool pointwise, bool depthwise) const {
    auto is = [](const dnnl::convolution_forward::primitive_desc& c, const char* prefix) {
      return std::string(c.impl_info_str()).rfind(prefix, 0) == 0;
    };
    const memory::desc blocked(inMd.dims(), act_, tag::nChw16c);
    for (const auto& c : all)
      if ((pointwise && is(c, "jit_1x1:avx512") && c.src_desc() == blocked) ||
          (depthwise && is(c, "jit_dw:avx512") && c.src_desc() == blocked))
        return c;
    for (const auto& c : all)
      if (!is(c, "ref") && c.src_desc() == inMd) return c;
    for (const auto& c : all)
      if (!is(c, "ref")) return c;
    return all.back();
  }

  int eltwise(int in, dnnl::algorithm alg, float alpha, const std::string& what) {
    const Value x = p_.values[in];  // a copy: newValue below may move the values
    dnnl::eltwise_forward::desc d(dnnl::prop_kind::forward_inference, alg, x.md, alpha, 0.f);
    dnnl::eltwise_forward::primitive_desc pd(d, attr(), s_.engine);
    int out = newValue(x.dims, pd.dst_desc());
    Step st;
    st.what = what + " " + dimsText(x.dims) + ": " + pd.impl_info_str();
    st.prim = dnnl::eltwise_forward(pd);
    st.valueArgs = {{DNNL_ARG_SRC, in}, {DNNL_ARG_DST, out}};
    st.scratchpad = pd.scratchpad_desc();
    addStep(std::move(st));
    return out;
  }

  int eltwiseStep(SpecReader& r) {
    int in = valueRef(r, "eltwise input");
    int64_t alg = r.integer("eltwise algorithm", code(EltwiseAlg::Relu), code(EltwiseAlg::Elu));
    double alpha = r.real("eltwise alpha");
    if (alg == code(EltwiseAlg::Elu) && !(alpha > 0)) bad("elu alpha must be positive");
    auto [scale, unsign] = quantHere();
    if (alg == code(EltwiseAlg::Relu) && unsign && isInt8(p_.values[in].md.data_type())) return quantizedRelu(in, scale);
    return eltwise(real(in), eltwiseAlg(alg), static_cast<float>(alpha), alg == code(EltwiseAlg::Relu) ? "relu" : "elu");
  }

  // A ReLU from a quantized value to a uint8 one is one reorder: rescaling to u8 saturates the
  // negatives to 0 (one pass instead of dequantize, ReLU, quantize).
  int quantizedRelu(int in, float outScale) {
    const Value x = p_.values[in];  // a copy: newValue below may move the values
    memory::desc want = withType(x.md, dt::u8);
    dnnl::primitive_attr a = attr();
    a.set_output_scales(0, {x.scale / outScale});
    dnnl::reorder::primitive_desc rpd(s_.engine, x.md, s_.engine, want, a);
    int out = newValue(x.dims, want);
    p_.values[out].scale = outScale;
    Step st;
    st.what = "relu (requantize to u8) " + dimsText(x.dims) + ": " + std::string(rpd.impl_info_str());
    st.prim = dnnl::reorder(rpd);
    st.valueArgs = {{DNNL_ARG_FROM, in}, {DNNL_ARG_TO, out}};
    st.scratchpad = rpd.scratchpad_desc();
    addStep(std::move(st));
    return out;
  }

  int poolWith(int in, dnnl::algorithm alg, int64_t wh, int64_t ww, int64_t sh, int64_t sw, int64_t pt, int64_t pl,
               int64_t pb, int64_t pr, const std::string& what) {
    const Value x = image(in, "pool");  // a copy: newValue below may move the values
    int64_t c = x.dims[1], ih = x.dims[2], iw = x.dims[3];
    if (pt >= wh || pb >= wh || pl >= ww || pr >= ww) bad("pool padding must be smaller than the window");
    int64_t oh = outSize(ih, wh, 1, sh, pt, pb, "pool"), ow = outSize(iw, ww, 1, sw, pl, pr, "pool");
    memory::dims outDims{n_, c, oh, ow};
    elems(outDims, "pool output");
    dnnl::pooling_forward::desc d(dnnl::prop_kind::forward_inference, alg, x.md, memory::desc(outDims, x.md.data_type(), tag::any),
                                  {sh, sw}, {wh, ww}, {pt, pl}, {pb, pr});
    dnnl::pooling_forward::primitive_desc pd(d, attr(), s_.engine);
    int out = newValue(outDims, pd.dst_desc());
    p_.values[out].scale = x.scale;
    Step st;
    st.what = what + " " + dimsText(x.dims) + ": " + pd.impl_info_str() + " [" + layoutName(x.md) + " → " + layoutName(pd.dst_desc()) + "]";
    st.prim = dnnl::pooling_forward(pd);
    st.valueArgs = {{DNNL_ARG_SRC, in}, {DNNL_ARG_DST, out}};
    st.scratchpad = pd.scratchpad_desc();
    addStep(std::move(st));
    return out;
  }

  static dnnl::algorithm poolAlg(int64_t alg) {
    return alg == code(PoolAlg::Max) ? dnnl::algorithm::pooling_max : dnnl::algorithm::pooling_avg_exclude_padding;
  }

  int pool(SpecReader& r) {
    int in = valueRef(r, "pool input");
    int64_t alg = r.integer("pool algorithm", code(PoolAlg::Max), code(PoolAlg::Avg));
    // A max pool commutes with quantization: it runs on the quantized input when its value keeps
    // the input's scale and type; otherwise on real numbers.
    const Value& x = p_.values[in];
    auto [scale, unsign] = quantHere();
    bool keepsQuant = isInt8(x.md.data_type()) && scale == x.scale && x.md.data_type() == int8Type(unsign);
    if (!(alg == code(PoolAlg::Max) && keepsQuant)) in = real(in);
    int64_t f[code(PoolField::count)];
    for (int i = 0; i < code(PoolField::count); ++i) {
      bool pad = i >= code(PoolField::padT);
      f[i] = r.integer(kPoolFieldNames[i], pad ? 0 : 1, kMaxDim);
    }
    using F = PoolField;
    return poolWith(in, poolAlg(alg), f[code(F::winH)], f[code(F::winW)], f[code(F::sH)], f[code(F::sW)], f[code(F::padT)],
                    f[code(F::padL)], f[code(F::padB)], f[code(F::padR)], alg == code(PoolAlg::Max) ? "max pool" : "avg pool");
  }

  int globalPool(SpecReader& r) {
    int in = real(valueRef(r, "global pool input"));
    int64_t alg = r.integer("global pool algorithm", code(PoolAlg::Max), code(PoolAlg::Avg));
    const Value& x = image(in, "global pool");
    return poolWith(in, poolAlg(alg), x.dims[2], x.dims[3], 1, 1, 0, 0, 0, 0,
                    alg == code(PoolAlg::Max) ? "global max pool" : "global avg pool");
  }

  std::vector<int> valueList(SpecReader& r, const char* what) {
    int64_t count = r.integer(what, 1, 1 << 12);
    std::vector<int> vs;
    for (int64_t i = 0; i < count; ++i) vs.push_back(real(valueRef(r, what)));
    return vs;
  }

  int add(SpecReader& r) {
    std::vector<int> ins = valueList(r, "add inputs");
    if (ins.size() < 2) bad("add needs two inputs or more");
    std::vector<memory::desc> mds;
    for (int v : ins) {
      if (p_.values[v].dims != p_.values[ins[0]].dims) bad("add inputs differ in shape");
      mds.push_back(p_.values[v].md);
    }
    dnnl::sum::primitive_desc pd(std::vector<float>(ins.size(), 1.f), mds, s_.engine, attr());
    int out = newValue(p_.values[ins[0]].dims, pd.dst_desc());
    Step st;
    st.what = "add " + dimsText(p_.values[ins[0]].dims) + ": " + pd.impl_info_str();
    st.prim = dnnl::sum(pd);
    for (size_t i = 0; i < ins.size(); ++i) st.valueArgs.push_back({DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i), ins[i]});
    st.valueArgs.push_back({DNNL_ARG_DST, out});
    st.scratchpad = pd.scratchpad_desc();
    addStep(std::move(st));
    return out;
  }

  int concat(SpecReader& r) {
    std::vector<int> ins = valueList(r, "concat inputs");
    std::vector<memory::desc> mds;
    memory::dims outDims = image(ins[0], "concat").dims;
    outDims[1] = 0;
    for (int v : ins) {
      const Value& x = image(v, "concat");
      if (x.dims[0] != outDims[0] || x.dims[2] != outDims[2] || x.dims[3] != outDims[3]) bad("concat inputs differ in size");
      outDims[1] += x.dims[1];
      mds.push_back(x.md);
    }
    elems({outDims[0], outDims[1], outDims[2], outDims[3]}, "concat output");
    dnnl::concat::primitive_desc pd(1, mds, s_.engine, attr());
    int out = newValue(outDims, pd.dst_desc());
    Step st;
    st.what = "concat → " + dimsText(outDims) + ": " + pd.impl_info_str();
    st.prim = dnnl::concat(pd);
    for (size_t i = 0; i < ins.size(); ++i) st.valueArgs.push_back({DNNL_ARG_MULTIPLE_SRC + static_cast<int>(i), ins[i]});
    st.valueArgs.push_back({DNNL_ARG_DST, out});
    st.scratchpad = pd.scratchpad_desc();
    addStep(std::move(st));
    return out;
  }

  int dense(SpecReader& r) {
    int in = valueRef(r, "dense input");
    int64_t units = r.integer("dense units", 1, kMaxDim);
    int wi = weightRef(r, "dense weight index", false);
    int bi = weightRef(r, "dense bias index", true);
    int si = p_.int8 ? weightRef(r, "dense weight scales index", true) : -1;
    const bool q = si >= 0;
    const auto [outScale, outUnsigned] = quantHere();
    if (q && !isInt8(p_.values[in].md.data_type())) bad("int8 dense: its input is not quantized");
    if (q && outScale == 0.f) bad("int8 dense: its value has no scale");
    if (!q) in = real(in);
    std::string what = std::string(q ? "int8 " : "") + "dense → " + std::to_string(units) + (bi >= 0 ? " +bias" : "");
    std::vector<PostSpec> posts = readPosts(r, false);
    QuantPosts qp;
    if (q) qp = {true, hasElu(posts), outScale, 1.f, dt::undef};
    dnnl::post_ops po;
    appendPosts(posts, po, what, qp);
    const Value x = p_.values[in];
    const dt srcType = q ? x.md.data_type() : act_, wType = q ? dt::s8 : act_, dstType = q ? int8Type(outUnsigned) : act_;
    elems({n_, units}, "dense output");
    elems({units, elems(x.dims, "dense input") / n_}, "dense weights");
    // Keras kernels are [features, units]; a 4-D input is flattened in (h, w, c) order, which is
    // the memory order of `hwio` for oneDNN's logical (units, c, h, w).
    memory::desc wUser, wAny;
    if (x.dims.size() == 4) {
      wUser = memory::desc({units, x.dims[1], x.dims[2], x.dims[3]}, dt::f32, tag::hwio);
      wAny = memory::desc({units, x.dims[1], x.dims[2], x.dims[3]}, wType, tag::any);
    } else {
      wUser = memory::desc({units, x.dims[1]}, dt::f32, tag::io);
      wAny = memory::desc({units, x.dims[1]}, wType, tag::any);
    }
    memory::desc srcMd = q ? memory::desc(x.dims, srcType, tag::any) : x.md;
    memory::desc biasMd({units}, dt::f32, tag::a);
    memory::desc dstAny({n_, units}, dstType, tag::any);
    auto d = bi >= 0 ? dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference, srcMd, wAny, biasMd, dstAny)
                     : dnnl::inner_product_forward::desc(dnnl::prop_kind::forward_inference, srcMd, wAny, dstAny);
    dnnl::primitive_attr denseAttr = attr(&po);
    std::vector<float> wScales;
    if (q) {
      wScales = weightScales(si, units);
      denseAttr.set_output_scales(1 << 1, outputScales(x.scale, wScales, qp));  // per unit (dst dim 1)
    }
    dnnl::inner_product_forward::primitive_desc pd(d, denseAttr, s_.engine);
    int src = as(in, pd.src_desc());
    Step st;
    st.what = what + ": " + pd.impl_info_str();
    st.prim = dnnl::inner_product_forward(pd);
    if (q) {
      st.fixedArgs[DNNL_ARG_WEIGHTS] = int8Weights(wi, wUser, pd.weights_desc(), wScales, false);
      if (bi >= 0) st.fixedArgs[DNNL_ARG_BIAS] = accumulatorBias(bi, biasMd, pd.bias_desc(), x.scale, wScales);
    } else {
      st.fixedArgs[DNNL_ARG_WEIGHTS] = weight(wi, wUser, pd.weights_desc(), "dense weights");
      if (bi >= 0) st.fixedArgs[DNNL_ARG_BIAS] = weight(bi, biasMd, pd.bias_desc(), "dense bias");
    }
    st.scratchpad = pd.scratchpad_desc();
    int out = newValue({n_, units}, pd.dst_desc());
    p_.values[out].scale = q ? outScale : 0.f;
    st.valueArgs = {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, out}};
    addStep(std::move(st));
    return out;
  }

  int softmax(SpecReader& r) {
    int in = real(valueRef(r, "softmax input"));
    const Value x = p_.values[in];
    if (x.dims.size() != 2) bad("softmax needs a [batch, features] input");
    dnnl::softmax_forward::desc d(dnnl::prop_kind::forward_inference, x.md, 1);
    dnnl::softmax_forward::primitive_desc pd(d, attr(), s_.engine);
    int out = newValue(x.dims, pd.dst_desc());
    Step st;
    st.what = "softmax " + dimsText(x.dims) + ": " + pd.impl_info_str();
    st.prim = dnnl::softmax_forward(pd);
    st.valueArgs = {{DNNL_ARG_SRC, in}, {DNNL_ARG_DST, out}};
    st.scratchpad = pd.scratchpad_desc();
    addStep(std::move(st));
    return out;
  }

  int batchNorm(SpecReader& r) {
    int in = real(valueRef(r, "batch norm input"));
    double eps = r.real("batch norm epsilon");
    if (!(eps > 0)) bad("batch norm epsilon must be positive");
    int idx[4];
    const char* names[4] = {"gamma", "beta", "moving mean", "moving variance"};
    for (int i = 0; i < 4; ++i) idx[i] = weightRef(r, names[i], false);
    const Value x = p_.values[in];
    int64_t c = x.dims[1];
    memory::desc chan({c}, dt::f32, tag::a);
    dnnl::batch_normalization_forward::desc d(
        dnnl::prop_kind::forward_inference, x.md, static_cast<float>(eps),
        dnnl::normalization_flags::use_global_stats | dnnl::normalization_flags::use_scale |
            dnnl::normalization_flags::use_shift);
    dnnl::batch_normalization_forward::primitive_desc pd(d, attr(), s_.engine);
    Step st;
    st.what = "batch norm " + dimsText(x.dims) + ": " + pd.impl_info_str();
    st.prim = dnnl::batch_normalization_forward(pd);
    const int argOf[4] = {DNNL_ARG_SCALE, DNNL_ARG_SHIFT, DNNL_ARG_MEAN, DNNL_ARG_VARIANCE};
    for (int i = 0; i < 4; ++i) st.fixedArgs[argOf[i]] = weight(idx[i], chan, chan, names[i]);
    st.scratchpad = pd.scratchpad_desc();
    int out = newValue(x.dims, pd.dst_desc());
    st.valueArgs = {{DNNL_ARG_SRC, in}, {DNNL_ARG_DST, out}};
    addStep(std::move(st));
    return out;
  }

  // Places every intermediate in one arena: a storage's bytes are reused once its last reader
  // has run (first fit over the live blocks). Then binds each step's arguments once.
  void layOut() {
    for (size_t i = 0; i < p_.steps.size(); ++i) {
      int over = p_.steps[i].overwrites;
      if (over >= 0 && p_.values[over].lastUse > static_cast<int>(i))
        bad("a sum post-op overwrites a value that a later step still reads");
    }
    struct Block {
      size_t offset, bytes;
      int last;
    };
    std::vector<Block> live;
    size_t arena = 0;
    for (Storage& sto : p_.storages) {
      if (sto.external) continue;
      live.erase(std::remove_if(live.begin(), live.end(), [&](const Block& b) { return b.last < sto.first; }), live.end());
      std::sort(live.begin(), live.end(), [](const Block& a, const Block& b) { return a.offset < b.offset; });
      size_t need = round64(sto.bytes), at = 0;
      for (const Block& b : live) {
        if (b.offset >= at + need) break;
        at = std::max(at, b.offset + b.bytes);
      }
      sto.offset = at;
      live.push_back({at, need, std::max(sto.last, sto.first)});
      arena = std::max(arena, at + need);
    }
    auto arenaBuf = bytesBuffer(std::max<size_t>(arena, 64));
    char* base = reinterpret_cast<char*>(arenaBuf->data);
    p_.arenaBytes = static_cast<int64_t>(arena);
    p_.owned.push_back(std::move(arenaBuf));

    size_t scratch = 0;
    for (const Step& st : p_.steps) scratch = std::max(scratch, st.scratchpad.get_size());
    auto scratchBuf = bytesBuffer(std::max<size_t>(scratch, 64));
    void* scratchPtr = scratchBuf->data;
    p_.scratchpadBytes = static_cast<int64_t>(scratch);
    p_.owned.push_back(std::move(scratchBuf));

    std::vector<memory> mems(p_.values.size());
    for (size_t v = 0; v < p_.values.size(); ++v) {
      const Value& val = p_.values[v];
      const Storage& sto = p_.storages[val.storage];
      mems[v] = sto.external ? p_.input : memory(val.md, s_.engine, base + sto.offset);
    }
    p_.args.resize(p_.steps.size());
    for (size_t i = 0; i < p_.steps.size(); ++i) {
      Step& st = p_.steps[i];
      auto& a = p_.args[i];
      for (auto& [arg, v] : st.valueArgs) a[arg] = mems[v];
      for (auto& [arg, m] : st.fixedArgs) a[arg] = m;
      if (st.scratchpad.get_size() > 0) a[DNNL_ARG_SCRATCHPAD] = memory(st.scratchpad, s_.engine, scratchPtr);
    }
  }
};

}  // namespace

Plan* createPlan(State& s, const std::vector<double>& spec, const std::vector<WeightArray>& weights) {
  auto p = std::make_unique<Plan>();
  Builder(s, *p, weights).build(spec);
  return p.release();
}

void runPlan(State& s, Plan& p, Buffer& input, Buffer& output, std::vector<double>* stepSeconds) {
  if (input.disposed || output.disposed) bad("input or output buffer was disposed");
  if (input.size != p.inputSize)
    bad("input has " + std::to_string(input.size) + " elements, the plan takes " + std::to_string(p.inputSize));
  if (output.size != p.outputSize)
    bad("output has " + std::to_string(output.size) + " elements, the plan makes " + std::to_string(p.outputSize));
  if (&input == &output) bad("input and output must be different buffers");
  materialize(input);  // a bf16 kernel's low output as input: the plan reads float32
  materialize(output);
  p.input.set_data_handle(input.data);
  p.output.set_data_handle(output.data);
  if (!stepSeconds) {
    for (size_t i = 0; i < p.steps.size(); ++i) p.steps[i].prim.execute(s.stream, p.args[i]);
    s.stream.wait();
    return;
  }
  stepSeconds->clear();
  for (size_t i = 0; i < p.steps.size(); ++i) {
    auto t0 = std::chrono::steady_clock::now();
    p.steps[i].prim.execute(s.stream, p.args[i]);
    s.stream.wait();
    stepSeconds->push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
}

void setPlanWeights(State& s, Plan& p, const std::vector<WeightArray>& weights) {
  if (p.int8) bad("an int8 plan's weights are quantized with scales built into its primitives: build a new plan");
  if (weights.size() != p.weights.size())
    bad("expected " + std::to_string(p.weights.size()) + " weight arrays, got " + std::to_string(weights.size()));
  for (size_t i = 0; i < weights.size(); ++i)
    if (weights[i].length != p.weights[i].length)
      bad("weight array " + std::to_string(i) + " has " + std::to_string(weights[i].length) + " values, expected " +
          std::to_string(p.weights[i].length));
  for (size_t i = 0; i < weights.size(); ++i) {
    WeightSlot& slot = p.weights[i];
    memory src(slot.user, s.engine, const_cast<float*>(weights[i].data));
    slot.toDst.execute(s.stream, src, slot.dst);
  }
  s.stream.wait();
}

void destroyPlan(Plan* p) { delete p; }

PlanInfo planInfo(const Plan& p) {
  PlanInfo info{p.arenaBytes, p.weightBytes, p.scratchpadBytes, p.inputSize, p.outputSize, {}};
  for (const Step& st : p.steps) info.steps.push_back(st.what);
  return info;
}

int64_t livePlans() { return plansAlive.load(); }

}  // namespace xnative
