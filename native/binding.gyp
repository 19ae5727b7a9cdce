{
  "target_defaults": {
    "cflags_cc": ["-std=c++17", "-O2", "-Wall", "-Wextra", "-fno-exceptions", "-fno-rtti"],
    "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
    "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS", "_GNU_SOURCE"]
  },
  "targets": [
    {
      "target_name": "sbx_native",
      "sources": [
        "src/addon.cc", "src/spec.cc", "src/job.cc", "src/child.cc", "src/ns.cc", "src/mnt.cc", "src/mnt_run.cc", "src/mnt_base.cc",
        "src/cgroup.cc", "src/cgroup_v1.cc", "src/cgroup_v2.cc", "src/seccomp.cc", "src/userns.cc",
        "src/host_probe.cc", "src/host_load.cc", "src/kernel.cc", "src/tty.cc", "src/zygote.cc", "src/init_config.cc", "src/input_files_pack.cc",
        "src/pipe_drop.cc"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "cflags_cc!": ["-fno-rtti"],
      "ldflags": ["-Wl,-z,now"]
    },
    {
      "target_name": "sbx_zstd",
      "sources": ["src/zstd_stream.cc", "src/gzip_stream.cc"],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "libraries": ["-lzstd"],
      "ldflags": ["-Wl,-z,now"]
    },
    {
      "target_name": "sbx-init",
      "type": "none",
      "variables": {"init_sources": ["src/init.cc", "src/caps.cc", "src/rlimit.cc", "src/user.cc", "src/seccomp_install.cc", "src/tty.cc", "src/input_files.cc", "src/output_files.cc"]},
      "actions": [{
        "action_name": "link_with_musl",
        "inputs": ["tools/build-init.sh", "<@(init_sources)", "<!@(ls src/*.h src/*.inc)"],
        "outputs": ["<(PRODUCT_DIR)/sbx-init"],
        "action": ["bash", "tools/build-init.sh", "<(PRODUCT_DIR)/sbx-init", "<@(init_sources)"]
      }]
    }
  ]
}
