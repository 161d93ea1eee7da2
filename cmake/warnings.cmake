# proxy_warnings: linked PRIVATE into our own targets only; third-party code stays quiet.
add_library(proxy_warnings INTERFACE)
target_compile_options(proxy_warnings INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wold-style-cast
    -Wnon-virtual-dtor -Woverloaded-virtual -Wimplicit-fallthrough -Wformat=2>)
if(PROXY_WERROR)
  target_compile_options(proxy_warnings INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-Werror>)
endif()
