{
  # Fallback build with plain node-gyp for machines without CMake (scripts/build-native.js picks it when
  # cmake is missing, or with PAJAMA_BUILD=gyp). Same CPU sources as native/CMakeLists.txt; oneDNN is used
  # when its headers are installed; no CUDA and no MPI (a world of one). -z nodelete: the addon is never unloaded (see native/CMakeLists.txt
  # for why).
  "variables": {
    "pt_have_dnnl": "<!(test -f /usr/include/oneapi/dnnl/dnnl.hpp && echo 1 || echo 0)"
  },
  "targets": [
    {
      "target_name": "pajama_native",
      "sources": ["<!@(ls -1 native/src/*.cc native/src/ops/*.cc native/src/dist/comm.cc native/src/dist/nccl.cc)"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")", "native/src"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS", "PT_BUILD_SYSTEM=\"node-gyp\"",
                  "PT_MPI_REASON=\"the node-gyp fallback build has no MPI support (build with CMake)\"",
                  "PT_NCCL_REASON=\"the node-gyp fallback build has no CUDA backend, so no NCCL (build with CMake)\""],
      "cflags!": ["-fno-exceptions", "-O2"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++14", "-std=gnu++17", "-O2"],
      "cflags": ["-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-O3", "-fno-math-errno", "-fno-trapping-math", "-fopenmp"],
      "ldflags": ["-fopenmp", "-Wl,-z,nodelete"],
      "conditions": [
        ["pt_have_dnnl==1", {
          "defines": ["PT_HAVE_DNNL"],
          "libraries": ["-ldnnl"]
        }]
      ]
    }
  ]
}
