# PROXY_SANITIZE=address,undefined instruments every target, third-party ones included,
# so that ASan sees every allocation. PROXY_FUZZ adds libFuzzer's coverage hooks.
if(PROXY_SANITIZE)
  add_compile_options(-fsanitize=${PROXY_SANITIZE} -fno-omit-frame-pointer
    -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${PROXY_SANITIZE})
endif()
if(PROXY_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "PROXY_FUZZ requires clang (CXX=clang++ CC=clang)")
  endif()
  # No recovery: a UBSan report must abort, or libFuzzer would not count it as a crash.
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
    -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
