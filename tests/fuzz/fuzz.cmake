# fuzz.cmake - libFuzzer targets for every parser of untrusted or operator
# input: the chat body check (core/reqbody.c + core/json_fast.c) alone and
# followed by the context stage's walker, the YAML pipeline loader
# (config_load_string), the multipart/form-data field reader, the auth clients file parser, the keyring's keys
# file and Retry-After family parsers, the sse stage's event parser, the
# redis state backend's record decoder, and the HTTP/1.x response parser
# of the own http:// client (core/h1parse.c).
# (The tokenizer's target needs the npm tokenizer files and PCRE2: it has
# its own runner, tests/fuzz/run_fuzz_tokenizer.sh.) Included from
# tests/CMakeLists.txt. libFuzzer needs clang whatever compiler builds the
# rest, so each target is built by a custom command from the few sources it
# needs; CTest runs each for a short, bounded time from its seed corpus and
# fails on any crash, leak or sanitizer report. Skipped without clang.
find_program(SLUICE_FUZZ_CLANG clang)
if(NOT SLUICE_FUZZ_CLANG)
  message(STATUS "clang not found: libFuzzer targets not built")
  return()
endif()

# clang without its libFuzzer runtime (libclang-rt-dev) cannot link them
set(_fz_probe ${CMAKE_BINARY_DIR}/fuzz-probe)
file(WRITE ${_fz_probe}.c "#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { (void)d; (void)n; return 0; }\n")
execute_process(COMMAND ${SLUICE_FUZZ_CLANG} -fsanitize=fuzzer,address,undefined
                        ${_fz_probe}.c -o ${_fz_probe}
                RESULT_VARIABLE _fz_rc OUTPUT_QUIET ERROR_QUIET)
if(NOT _fz_rc EQUAL 0)
  message(STATUS "clang cannot link libFuzzer (libclang-rt-dev missing?): "
                 "libFuzzer targets not built")
  return()
endif()

set(_fz_dir ${CMAKE_CURRENT_SOURCE_DIR}/fuzz)
set(_fz_flags -g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror
              -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)
execute_process(COMMAND pkg-config --cflags --libs jansson yaml-0.1
                OUTPUT_VARIABLE _fz_libs OUTPUT_STRIP_TRAILING_WHITESPACE)
separate_arguments(_fz_libs UNIX_COMMAND "${_fz_libs}")

# sluice_fuzz_target(<name> <include dirs (;-list)> <sources...>)
function(sluice_fuzz_target name incdirs)
  set(incflags)
  foreach(d ${incdirs})
    list(APPEND incflags -I${d})
  endforeach()
  set(bin ${CMAKE_BINARY_DIR}/fuzz/fuzz_${name})
  set(srcs ${_fz_dir}/fuzz_${name}.c ${ARGN})
  add_custom_command(
    OUTPUT ${bin}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/fuzz
    COMMAND ${SLUICE_FUZZ_CLANG} ${_fz_flags} ${incflags}
            -I${CMAKE_SOURCE_DIR}/sdk ${srcs} ${_fz_libs} -lm -o ${bin}
    DEPENDS ${srcs}
    COMMENT "Building the libFuzzer target fuzz_${name} with clang"
    VERBATIM)
  add_custom_target(fuzz_${name} ALL DEPENDS ${bin})
  # A fixed seed: the suite explores the same inputs on every run, so its
  # verdict does not depend on luck. To search further, run the binary by
  # hand without -seed (a random one) and a longer -max_total_time.
  set(corpus ${CMAKE_BINARY_DIR}/fuzz-corpus/${name})
  add_test(NAME fuzz/${name}
           COMMAND sh -c "mkdir -p '${corpus}' && exec '${bin}' -seed=1 -max_total_time=15 -runs=5000000 -max_len=8192 -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 '${corpus}' '${_fz_dir}/corpus/${name}'")
  set_tests_properties(fuzz/${name} PROPERTIES TIMEOUT 120)
endfunction()

sluice_fuzz_target(reqbody ${CMAKE_SOURCE_DIR}/core
                   ${CMAKE_SOURCE_DIR}/core/reqbody.c
                   ${CMAKE_SOURCE_DIR}/core/json_fast.c)
if(EXISTS ${CMAKE_SOURCE_DIR}/plugins/context/walk.c)
  set(_ctx ${CMAKE_SOURCE_DIR}/plugins/context)
  sluice_fuzz_target(walk "${CMAKE_SOURCE_DIR}/core;${_ctx}"
                     ${CMAKE_SOURCE_DIR}/core/reqbody.c
                     ${CMAKE_SOURCE_DIR}/core/json_fast.c ${_ctx}/walk.c
                     ${_ctx}/walk_api.c ${_ctx}/estimate.c ${_ctx}/estimate_weights.c)
endif()
sluice_fuzz_target(multipart ${CMAKE_SOURCE_DIR}/core
                   ${CMAKE_SOURCE_DIR}/core/multipart.c)
sluice_fuzz_target(config ${CMAKE_SOURCE_DIR}/core
                   ${CMAKE_SOURCE_DIR}/core/config.c
                   ${CMAKE_SOURCE_DIR}/core/api.c
                   ${CMAKE_SOURCE_DIR}/core/config_routes.c
                   ${CMAKE_SOURCE_DIR}/core/config_expand.c
                   ${CMAKE_SOURCE_DIR}/core/yaml_load.c
                   ${CMAKE_SOURCE_DIR}/core/buf.c
                   ${CMAKE_SOURCE_DIR}/core/blockcache.c)
if(EXISTS ${CMAKE_SOURCE_DIR}/plugins/keyring/keyfile.c)
  set(_kr ${CMAKE_SOURCE_DIR}/plugins/keyring)
  sluice_fuzz_target(keyfile ${_kr} ${_kr}/keyfile.c)
  sluice_fuzz_target(retry_after ${_kr} ${_kr}/retry_after.c)
endif()
sluice_fuzz_target(state_wire ${CMAKE_SOURCE_DIR}/core
                   ${CMAKE_SOURCE_DIR}/core/state_wire.c
                   ${CMAKE_SOURCE_DIR}/core/buf.c
                   ${CMAKE_SOURCE_DIR}/core/blockcache.c)
sluice_fuzz_target(h1parse ${CMAKE_SOURCE_DIR}/core
                   ${CMAKE_SOURCE_DIR}/core/h1parse.c)
sluice_fuzz_target(sse_parser ${CMAKE_SOURCE_DIR}/plugins/sse
                   ${CMAKE_SOURCE_DIR}/plugins/sse/sse_parser.c)
sluice_fuzz_target(clients ${CMAKE_SOURCE_DIR}/plugins/auth
                   ${CMAKE_SOURCE_DIR}/plugins/auth/clients_file.c
                   ${CMAKE_SOURCE_DIR}/plugins/auth/sha256.c)
