{
  "targets": [
    {
      "target_name": "xception_native",
      "sources": [
        "native/addon.cc",
        "native/arena.cc",
        "native/common.cc",
        "native/kernels_dnnl.cc",
        "native/kernels_loops.cc",
        "native/kernels_bn.cc",
        "native/kernels_dw.cc",
        "native/plan.cc",
        "native/round_bf16.cc"
      ],
      "cflags!": ["-fno-exceptions", "-fno-rtti"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17", "-std=gnu++20"],
      "cflags": ["-O3", "-fopenmp"],
      "cflags_cc": ["-std=c++17", "-O3", "-fexceptions", "-fopenmp", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "ldflags": ["-fopenmp"],
      "libraries": ["-ldnnl"],
      "defines": ["NAPI_DISABLE_CPP_EXCEPTIONS"]
    }
  ]
}
