// The Node-API binding: a thin layer that turns JS values into Args, runs one kernel and turns the
// Result back into JS values. Entry points:
//   version()                         → { abi, onednn: "2.6.3", openmp, cpuIsa, bf16: native|emulated|unsupported }
//   setThreads(n)                     OpenMP threads for this thread's kernels (worker threads each set their own)
//   threads()                         → OpenMP threads the calling thread's kernels use
//   alloc(size, zero)                 → buffer handle (a type-tagged N-API external)
//   upload(Float32Array)              → buffer handle holding a copy
//   download(handle, Float32Array)    copies the handle's elements out (lengths must match)
//   free(handle)                      releases the memory now; later use is an error
//   run(op, handles[], numbers[], Int32Array | undefined) → [...new handles, ...scalars]
//   describeConv(which, numbers[], bf16) → oneDNN implementation name (of the `.bf16` kernel if bf16)
//   stats()                           → { buffers, bytes, pooledBytes, arenaBytes, peakLiveBytes, cachedPrimitives, cacheHits, cacheMisses }
//   trimPool()                        returns the arena's free pages (freed, kept for reuse) to the system
//   setPoolLimit(bytes)               the arena's slack: resident at most live peak + bytes (process-wide)
//   planCreate(Float64Array spec, Float32Array[] weights) → plan handle (compiled inference, plan.h)
//   planRun(plan, input handle, output handle)            runs the whole network
//   planProfile(plan, input handle, output handle)        the same, → seconds per step
//   planSetWeights(plan, Float32Array[] weights)          re-reads the (re-folded) weights
//   planInfo(plan)                    → { arenaBytes, weightBytes, scratchpadBytes, inputSize, outputSize, steps[] }
//   planFree(plan)                    releases the plan now; later use is an error
// Every C++ exception becomes a JS Error whose `code` says where it came from; nothing aborts.
#define NAPI_VERSION 8
#include <malloc.h>

#include <algorithm>
#ifdef _OPENMP
#include <omp.h>
#endif
#include <node_api.h>

#include <cstring>
#include <map>
#include <string>

#include "arena.h"
#include "common.h"
#include "plan.h"

namespace xnative {
namespace {

constexpr int kAbiVersion = 4;

// Marks externals made by this addon, so a foreign external can never be read as a Buffer.
const napi_type_tag kBufferTag = {0x7863657074696f6eULL, 0x6f6e65646e6e6c31ULL};

// Marks plan externals (a different tag: a plan can never be read as a buffer or the reverse).
const napi_type_tag kPlanTag = {0x7863657074696f6eULL, 0x706c616e706c616eULL};

// What a plan external owns; `plan` becomes null when freed early.
struct PlanHolder {
  Plan* plan = nullptr;
  int64_t bytes = 0;
};

class NapiError : public KernelError {
 public:
  using KernelError::KernelError;
};

#define NAPI_CHECK(call)                                                   \
  do {                                                                     \
    if ((call) != napi_ok) throw NapiError("Node-API call failed: " #call); \
  } while (0)

const std::map<std::string, KernelFn>& kernelTable() {
  static const std::map<std::string, KernelFn> table = [] {
    std::map<std::string, KernelFn> t;
    registerDnnlKernels(t);
    registerLoopKernels(t);
    registerBatchNormKernels(t);
    return t;
  }();
  return table;
}

State& stateOf(napi_env env) {
  void* data = nullptr;
  NAPI_CHECK(napi_get_instance_data(env, &data));
  if (!data) throw KernelError("native backend state is missing");
  return *static_cast<State*>(data);
}

// What V8 is told about the buffers behind this thread's handles (one Node environment per
// thread). V8 starts a garbage collection whenever its external memory grows by some tens of MB
// since the last one. Reporting every allocation and every dispose made a training step, whose
// live tensors rise and fall by gigabytes, trigger dozens of collections whose background marking
// took a core from the kernels (a 299×299 batch-8 step ran ~15% slower). So V8 hears only of new
// highs of the live bytes, and of what its collector frees: a program that disposes its tensors
// stops triggering collections after its first step, and one that drops handles still does.
thread_local int64_t tLiveBytes = 0;      // bytes of this thread's undisposed buffers
thread_local int64_t tReportedBytes = 0;  // what V8 has been told

void reportExternal(napi_env env, int64_t delta) {
  int64_t ignored;
  if (delta != 0) napi_adjust_external_memory(env, delta, &ignored);
  tReportedBytes += delta;
}

void finalizeBuffer(napi_env env, void* data, void*) {
  Buffer* b = static_cast<Buffer*>(data);
  if (!b->disposed) {
    const int64_t bytes = b->size * static_cast<int64_t>(sizeof(float));
    tLiveBytes -= bytes;
    reportExternal(env, -std::min(bytes, tReportedBytes));
    releaseBufferData(b);
  }
  delete b;
}

napi_value wrapBuffer(napi_env env, std::unique_ptr<Buffer> b) {
  napi_value v;
  Buffer* raw = b.get();
  NAPI_CHECK(napi_create_external(env, raw, finalizeBuffer, nullptr, &v));
  b.release();  // the external owns it now
  NAPI_CHECK(napi_type_tag_object(env, v, &kBufferTag));
  // Tell V8's GC how much memory hides behind small objects, so lost handles get collected.
  tLiveBytes += raw->size * static_cast<int64_t>(sizeof(float));
  if (tLiveBytes > tReportedBytes) reportExternal(env, tLiveBytes - tReportedBytes);
  return v;
}

Buffer* unwrapBuffer(napi_env env, napi_value v, const char* what) {
  napi_valuetype t;
  NAPI_CHECK(napi_typeof(env, v, &t));
  bool ours = false;
  if (t == napi_external) NAPI_CHECK(napi_check_object_type_tag(env, v, &kBufferTag, &ours));
  if (!ours) throw KernelError(std::string(what) + " is not a native buffer handle");
  void* data;
  NAPI_CHECK(napi_get_value_external(env, v, &data));
  Buffer* b = static_cast<Buffer*>(data);
  if (b->disposed) throw KernelError(std::string(what) + " was disposed");
  return b;
}

std::vector<napi_value> argsOf(napi_env env, napi_callback_info info, size_t expected) {
  std::vector<napi_value> argv(expected);
  size_t argc = expected;
  NAPI_CHECK(napi_get_cb_info(env, info, &argc, argv.data(), nullptr, nullptr));
  if (argc < expected) throw KernelError("expected " + std::to_string(expected) + " arguments");
  return argv;
}

// A JS number that must be a whole number in [lo, hi]; anything else throws `message`.
int64_t wholeNumber(napi_env env, napi_value v, double lo, double hi, const char* message) {
  double x;
  NAPI_CHECK(napi_get_value_double(env, v, &x));
  if (!(x >= lo && x <= hi) || x != static_cast<double>(static_cast<int64_t>(x))) throw KernelError(message);
  return static_cast<int64_t>(x);
}

template <class T>
T* typedArrayData(napi_env env, napi_value v, napi_typedarray_type want, size_t* length, const char* what) {
  bool is = false;
  NAPI_CHECK(napi_is_typedarray(env, v, &is));
  if (!is) throw KernelError(std::string(what) + " must be a typed array");
  napi_typedarray_type type;
  void* data;
  NAPI_CHECK(napi_get_typedarray_info(env, v, &type, length, &data, nullptr, nullptr));
  if (type != want) throw KernelError(std::string(what) + " has the wrong element type");
  return static_cast<T*>(data);
}

napi_value number(napi_env env, double v) {
  napi_value r;
  NAPI_CHECK(napi_create_double(env, v, &r));
  return r;
}

void setProp(napi_env env, napi_value obj, const char* name, napi_value v) {
  NAPI_CHECK(napi_set_named_property(env, obj, name, v));
}

// ---- entry points ---------------------------------------------------------------------------

// The instruction set oneDNN dispatches to (after ONEDNN_MAX_CPU_ISA), by oneDNN's name.
std::string cpuIsaName() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::sse41: return "sse41";
    case dnnl::cpu_isa::avx: return "avx";
    case dnnl::cpu_isa::avx2: return "avx2";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx512_mic: return "avx512_mic";
    case dnnl::cpu_isa::avx512_mic_4ops: return "avx512_mic_4ops";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    default: return "other";
  }
}

napi_value version(napi_env env, napi_callback_info) {
  napi_value obj, s;
  NAPI_CHECK(napi_create_object(env, &obj));
  setProp(env, obj, "abi", number(env, kAbiVersion));
  const dnnl_version_t* v = dnnl_version();
  std::string ver = std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch);
  NAPI_CHECK(napi_create_string_utf8(env, ver.c_str(), ver.size(), &s));
  setProp(env, obj, "onednn", s);
  napi_value omp;
#ifdef _OPENMP
  NAPI_CHECK(napi_get_boolean(env, true, &omp));
#else
  NAPI_CHECK(napi_get_boolean(env, false, &omp));
#endif
  setProp(env, obj, "openmp", omp);
  std::string isa = cpuIsaName();
  NAPI_CHECK(napi_create_string_utf8(env, isa.c_str(), isa.size(), &s));
  setProp(env, obj, "cpuIsa", s);
  NAPI_CHECK(napi_create_string_utf8(env, bf16Hardware(), NAPI_AUTO_LENGTH, &s));
  setProp(env, obj, "bf16", s);
  return obj;
}

// OpenMP's thread count is a per-thread setting (the nthreads ICV): each Node worker thread that
// calls this sets the team size of the parallel regions it starts, and no other thread's.
napi_value setThreads(napi_env env, napi_callback_info info) {
  auto argv = argsOf(env, info, 1);
  int64_t n = wholeNumber(env, argv[0], 1, 1024, "setThreads: the thread count must be an integer in [1, 1024]");
#ifdef _OPENMP
  omp_set_num_threads(static_cast<int>(n));
#else
  (void)n;
#endif
  return nullptr;
}

napi_value threads(napi_env env, napi_callback_info) {
#ifdef _OPENMP
  return number(env, omp_get_max_threads());
#else
  return number(env, 1);
#endif
}

napi_value setPoolLimitEntry(napi_env env, napi_callback_info info) {
  auto argv = argsOf(env, info, 1);
  arenaSetSlack(static_cast<size_t>(wholeNumber(env, argv[0], 0, 9.0e15, "setPoolLimit: bytes must be a non-negative integer")));
  return nullptr;
}

napi_value alloc(napi_env env, napi_callback_info info) {
  auto argv = argsOf(env, info, 2);
  // allocBuffer refuses sizes above its own limit with a clear error.
  int64_t size = wholeNumber(env, argv[0], 0, 9.0e18, "alloc: size must be a non-negative integer");
  bool zero;
  NAPI_CHECK(napi_get_value_bool(env, argv[1], &zero));
  return wrapBuffer(env, allocBuffer(size, zero));
}

napi_value upload(napi_env env, napi_callback_info info) {
  auto argv = argsOf(env, info, 1);
  size_t length;
  const float* src = typedArrayData<float>(env, argv[0], napi_float32_array, &length, "upload data");
  auto b = allocBuffer(static_cast<int64_t>(length), false);
  if (length) std::memcpy(b->data, src, length * sizeof(float));
  return wrapBuffer(env, std::move(b));
}

napi_value download(napi_env env, napi_callback_info info) {
  auto argv = argsOf(env, info, 2);
  Buffer* b = unwrapBuffer(env, argv[0], "download handle");
  size_t length;
  float* dst = typedArrayData<float>(env, argv[1], napi_float32_array, &length, "download target");
  if (static_cast<int64_t>(length) != b->size)
    throw KernelError("download: handle has " + std::to_string(b->size) + " elements, target has " +
                      std::to_string(length));
  if (isLow(*b))
    widenBf16(lowData(*b), dst, b->size);
  else if (length)
    std::memcpy(dst, b->data, length * sizeof(float));
  return nullptr;
}

napi_value freeBuffer(napi_env env, napi_callback_info info) {
  auto argv = argsOf(env, info, 1);
  Buffer* b = unwrapBuffer(env, argv[0], "free handle");
  tLiveBytes -= b->size * static_cast<int64_t>(sizeof(float));  // V8 keeps the high (see tLiveBytes)
  releaseBufferData(b);
  return nullptr;
}

void readNumbers(napi_env env, napi_value arr, std::vector<double>& out) {
  bool isArray = false;
  NAPI_CHECK(napi_is_array(env, arr, &isArray));
  if (!isArray) throw KernelError("numeric parameters must be an array");
  uint32_t n;
  NAPI_CHECK(napi_get_array_length(env, arr, &n));
  out.resize(n);
  for (uint32_t i = 0; i < n; ++i) {
    napi_value v;
    NAPI_CHECK(napi_get_element(env, arr, i, &v));
    napi_valuetype t;
    NAPI_CHECK(napi_typeof(env, v, &t));
    if (t != napi_number) throw KernelError("numeric parameter " + std::to_string(i) + " is not a number");
    NAPI_CHECK(napi_get_value_double(env, v, &out[i]));
  }
}

std::string readString(napi_env env, napi_value v, const char* what) {
  char buf[128];
  size_t len;
  if (napi_get_value_string_utf8(env, v, buf, sizeof buf, &len) != napi_ok)
    throw KernelError(std::string(what) + " must be a string");
  return std::string(buf, len);
}

napi_value run(napi_env env, napi_callback_info info) {
  auto argv = argsOf(env, info, 4);
  std::string op = readString(env, argv[0], "kernel name");
  auto it = kernelTable().find(op);
  if (it == kernelTable().end()) throw KernelError("unknown kernel " + op);

  Args a;
  a.op = it->first.c_str();
  bool isArray = false;
  NAPI_CHECK(napi_is_array(env, argv[1], &isArray));
  if (!isArray) throw KernelError(op + ": inputs must be an array");
  uint32_t nIn;
  NAPI_CHECK(napi_get_array_length(env, argv[1], &nIn));
  a.in.resize(nIn);
  for (uint32_t i = 0; i < nIn; ++i) {
    napi_value v;
    NAPI_CHECK(napi_get_element(env, argv[1], i, &v));
    a.in[i] = unwrapBuffer(env, v, (op + " input " + std::to_string(i)).c_str());
  }
  readNumbers(env, argv[2], a.nums);
  napi_valuetype t;
  NAPI_CHECK(napi_typeof(env, argv[3], &t));
  if (t != napi_undefined && t != napi_null) {
    size_t n;
    a.ints = typedArrayData<int32_t>(env, argv[3], napi_int32_array, &n, "labels");
    a.intCount = static_cast<int64_t>(n);
  }

  Result r;
  it->second(stateOf(env), a, r);

  napi_value result;
  NAPI_CHECK(napi_create_array_with_length(env, r.out.size() + r.scalars.size(), &result));
  uint32_t k = 0;
  for (auto& b : r.out) NAPI_CHECK(napi_set_element(env, result, k++, wrapBuffer(env, std::move(b))));
  for (double s : r.scalars) NAPI_CHECK(napi_set_element(env, result, k++, number(env, s)));
  return result;
}

napi_value describeConvEntry(napi_env env, napi_callback_info info) {
  auto argv = argsOf(env, info, 3);
  int64_t which = wholeNumber(env, argv[0], 0, 2, "describeConv: which must be 0, 1 or 2");
  bool bf16 = false;
  NAPI_CHECK(napi_get_value_bool(env, argv[2], &bf16));
  Args a;
  a.op = "describeConv";
  readNumbers(env, argv[1], a.nums);
  if (a.nums.size() != 18) throw KernelError("describeConv: expected 18 convolution numbers");
  std::string s = describeConv(stateOf(env), a, static_cast<int>(which), bf16);
  napi_value v;
  NAPI_CHECK(napi_create_string_utf8(env, s.c_str(), s.size(), &v));
  return v;
}

// ---- compiled inference plans ----------------------------------------------------------------

std::vector<WeightArray> weightArrays(napi_env env, napi_value arr) {
  bool isArray = false;
  NAPI_CHECK(napi_is_array(env, arr, &isArray));
  if (!isArray) throw KernelError("plan weights must be an array of Float32Arrays");
  uint32_t n;
  NAPI_CHECK(napi_get_array_length(env, arr, &n));
  std::vector<WeightArray> out(n);
  for (uint32_t i = 0; i < n; ++i) {
    napi_value v;
    NAPI_CHECK(napi_get_element(env, arr, i, &v));
    size_t length;
    const float* data = typedArrayData<float>(env, v, napi_float32_array, &length, "plan weight");
    out[i] = {data, length};
  }
  return out;
}

void finalizePlan(napi_env env, void* data, void*) {
  PlanHolder* h = static_cast<PlanHolder*>(data);
  if (h->plan) {
    int64_t ignored;
    napi_adjust_external_memory(env, -h->bytes, &ignored);
    destroyPlan(h->plan);
  }
  delete h;
}

PlanHolder& unwrapPlan(napi_env env, napi_value v) {
  napi_valuetype t;
  NAPI_CHECK(napi_typeof(env, v, &t));
  bool ours = false;
  if (t == napi_external) NAPI_CHECK(napi_check_object_type_tag(env, v, &kPlanTag, &ours));
  if (!ours) throw KernelError("not an inference plan handle");
  void* data;
  NAPI_CHECK(napi_get_value_external(env, v, &data));
  PlanHolder* h = static_cast<PlanHolder*>(data);
  if (!h->plan) throw KernelError("inference plan was freed");
  return *h;
}

napi_value planCreate(napi_env env, napi_callback_info info) {
  auto argv = argsOf(env, info, 2);
  size_t n;
  const double* spec = typedArrayData<double>(env, argv[0], napi_float64_array, &n, "plan spec");
  std::vector<double> numbers(spec, spec + n);
  std::vector<WeightArray> weights = weightArrays(env, argv[1]);
  auto holder = std::make_unique<PlanHolder>();
  holder->plan = createPlan(stateOf(env), numbers, weights);
  PlanInfo pi = planInfo(*holder->plan);
  holder->bytes = pi.arenaBytes + pi.weightBytes + pi.scratchpadBytes;
  napi_value v;
  if (napi_create_external(env, holder.get(), finalizePlan, nullptr, &v) != napi_ok) {
    destroyPlan(holder->plan);
    throw NapiError("Node-API call failed: napi_create_external (plan)");
  }
  PlanHolder* raw = holder.release();  // the external owns it now
  NAPI_CHECK(napi_type_tag_object(env, v, &kPlanTag));
  int64_t ignored;
  NAPI_CHECK(napi_adjust_external_memory(env, raw->bytes, &ignored));
  return v;
}

napi_value planRun(napi_env env, napi_callback_info info) {
  auto argv = argsOf(env, info, 3);
  PlanHolder& h = unwrapPlan(env, argv[0]);
  Buffer* in = unwrapBuffer(env, argv[1], "plan input");
  Buffer* out = unwrapBuffer(env, argv[2], "plan output");
  runPlan(stateOf(env), *h.plan, *in, *out);
  return nullptr;
}

// Like planRun, timing each step: → seconds per step (planInfo's steps, in order).
napi_value planProfile(napi_env env, napi_callback_info info) {
  auto argv = argsOf(env, info, 3);
  PlanHolder& h = unwrapPlan(env, argv[0]);
  Buffer* in = unwrapBuffer(env, argv[1], "plan input");
  Buffer* out = unwrapBuffer(env, argv[2], "plan output");
  std::vector<double> seconds;
  runPlan(stateOf(env), *h.plan, *in, *out, &seconds);
  napi_value arr;
  NAPI_CHECK(napi_create_array_with_length(env, seconds.size(), &arr));
  for (size_t i = 0; i < seconds.size(); ++i) NAPI_CHECK(napi_set_element(env, arr, static_cast<uint32_t>(i), number(env, seconds[i])));
  return arr;
}

napi_value planSetWeights(napi_env env, napi_callback_info info) {
  auto argv = argsOf(env, info, 2);
  PlanHolder& h = unwrapPlan(env, argv[0]);
  setPlanWeights(stateOf(env), *h.plan, weightArrays(env, argv[1]));
  return nullptr;
}

napi_value planInfoEntry(napi_env env, napi_callback_info info) {
  auto argv = argsOf(env, info, 1);
  PlanHolder& h = unwrapPlan(env, argv[0]);
  PlanInfo pi = planInfo(*h.plan);
  napi_value obj, steps;
  NAPI_CHECK(napi_create_object(env, &obj));
  setProp(env, obj, "arenaBytes", number(env, static_cast<double>(pi.arenaBytes)));
  setProp(env, obj, "weightBytes", number(env, static_cast<double>(pi.weightBytes)));
  setProp(env, obj, "scratchpadBytes", number(env, static_cast<double>(pi.scratchpadBytes)));
  setProp(env, obj, "inputSize", number(env, static_cast<double>(pi.inputSize)));
  setProp(env, obj, "outputSize", number(env, static_cast<double>(pi.outputSize)));
  NAPI_CHECK(napi_create_array_with_length(env, pi.steps.size(), &steps));
  for (size_t i = 0; i < pi.steps.size(); ++i) {
    napi_value s;
    NAPI_CHECK(napi_create_string_utf8(env, pi.steps[i].c_str(), pi.steps[i].size(), &s));
    NAPI_CHECK(napi_set_element(env, steps, static_cast<uint32_t>(i), s));
  }
  setProp(env, obj, "steps", steps);
  return obj;
}

napi_value planFree(napi_env env, napi_callback_info info) {
  auto argv = argsOf(env, info, 1);
  PlanHolder& h = unwrapPlan(env, argv[0]);
  int64_t ignored;
  NAPI_CHECK(napi_adjust_external_memory(env, -h.bytes, &ignored));
  destroyPlan(h.plan);
  h.plan = nullptr;
  return nullptr;
}

napi_value trimPool(napi_env env, napi_callback_info) {
  arenaTrim();
  if (tReportedBytes > tLiveBytes) reportExternal(env, tLiveBytes - tReportedBytes);  // the high is forgotten too
  return nullptr;
}

napi_value stats(napi_env env, napi_callback_info) {
  State& st = stateOf(env);
  MemoryStats m = memoryStats();
  napi_value obj;
  NAPI_CHECK(napi_create_object(env, &obj));
  setProp(env, obj, "buffers", number(env, static_cast<double>(m.buffers)));
  setProp(env, obj, "bytes", number(env, static_cast<double>(m.bytes)));
  setProp(env, obj, "pooledBytes", number(env, static_cast<double>(m.pooledBytes)));
  setProp(env, obj, "arenaBytes", number(env, static_cast<double>(m.arenaBytes)));
  setProp(env, obj, "peakLiveBytes", number(env, static_cast<double>(m.peakLiveBytes)));
  setProp(env, obj, "cachedPrimitives", number(env, static_cast<double>(st.cache.size())));
  setProp(env, obj, "cacheHits", number(env, static_cast<double>(st.hits)));
  setProp(env, obj, "cacheMisses", number(env, static_cast<double>(st.misses)));
  setProp(env, obj, "plans", number(env, static_cast<double>(livePlans())));
  return obj;
}

// Runs an entry point, converting any C++ exception into a pending JS exception.
template <napi_value (*F)(napi_env, napi_callback_info)>
napi_value guarded(napi_env env, napi_callback_info info) {
  std::string code, message;
  try {
    return F(env, info);
  } catch (const dnnl::error& e) {
    code = "ERR_ONEDNN";
    message = std::string("oneDNN error (status ") + std::to_string(static_cast<int>(e.status)) + "): " + e.what();
  } catch (const KernelError& e) {
    code = "ERR_XCEPTION_NATIVE";
    message = e.what();
  } catch (const OutOfMemory& e) {
    code = "ERR_XCEPTION_NATIVE_OOM";
    message = e.what();
  } catch (const std::bad_alloc&) {
    code = "ERR_XCEPTION_NATIVE_OOM";
    message = "out of native memory";
  } catch (const std::exception& e) {
    code = "ERR_XCEPTION_NATIVE";
    message = e.what();
  } catch (...) {
    code = "ERR_XCEPTION_NATIVE";
    message = "unknown native exception";
  }
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, code.c_str(), message.c_str());
  return nullptr;
}

void deleteState(napi_env, void* data, void*) { delete static_cast<State*>(data); }

napi_value init(napi_env env, napi_value exports) {
  NAPI_CHECK(napi_set_instance_data(env, new State(), deleteState, nullptr));
  const napi_property_descriptor props[] = {
      {"version", nullptr, guarded<version>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setThreads", nullptr, guarded<setThreads>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"threads", nullptr, guarded<threads>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"setPoolLimit", nullptr, guarded<setPoolLimitEntry>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"alloc", nullptr, guarded<alloc>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"upload", nullptr, guarded<upload>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"download", nullptr, guarded<download>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"free", nullptr, guarded<freeBuffer>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"run", nullptr, guarded<run>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"describeConv", nullptr, guarded<describeConvEntry>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"stats", nullptr, guarded<stats>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"trimPool", nullptr, guarded<trimPool>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"planCreate", nullptr, guarded<planCreate>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"planRun", nullptr, guarded<planRun>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"planProfile", nullptr, guarded<planProfile>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"planSetWeights", nullptr, guarded<planSetWeights>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"planInfo", nullptr, guarded<planInfoEntry>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
      {"planFree", nullptr, guarded<planFree>, nullptr, nullptr, nullptr, napi_enumerable, nullptr},
  };
  NAPI_CHECK(napi_define_properties(env, exports, sizeof props / sizeof props[0], props));
  return exports;
}

}  // namespace
}  // namespace xnative

NAPI_MODULE_INIT() {
  // Tensors live in the arena (arena.cc); malloc serves oneDNN's own buffers: scratchpads, filter
  // layouts, and the packing buffers dnnl_sgemm takes per call (~1.6 MB per thread). With glibc's
  // defaults those are mmapped and unmapped, or trimmed, call after call: 55k page faults per
  // training step at 299×299 batch 8, and the pointwise GEMMs ~8% slower. Fixed thresholds keep
  // blocks up to 32 MB in the heap and up to 128 MB of free heap top, so the same sizes are reused
  // (fixed, too, so that glibc's dynamic threshold does not drift).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  try {
    return xnative::init(env, exports);
  } catch (const std::exception& e) {
    napi_throw_error(env, "ERR_XCEPTION_NATIVE", (std::string("native backend failed to start: ") + e.what()).c_str());
    return nullptr;
  }
}
