# SPDX-License-Identifier: Apache-2.0
# cmake -DEXE=<program> "-DARGS=a;b" -DRC=<expected exit status> [-DOUT_REGEX=<regex>]
#       [-DERR_REGEX=<regex>] [-DONE_LINE=ON] [-DJSON=ON] -P check_cli.cmake
#
# Runs an example with ARGS and checks its exit status; that stdout / stderr, without their last
# newline, match the regexes; with ONE_LINE=ON that stderr is exactly one line; with JSON=ON that
# stdout is one valid JSON document with a "stages" array (cmake's own parser: no python needed).
foreach(v EXE RC)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "check_cli.cmake: -D${v}=... is required")
  endif()
endforeach()
execute_process(COMMAND ${EXE} ${ARGS} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(what "${EXE} ${ARGS}")
if(NOT rc STREQUAL "${RC}")
  message(FATAL_ERROR "${what}: exit status ${rc}, expected ${RC}\nstdout:\n${out}\nstderr:\n${err}")
endif()
string(REGEX REPLACE "\n$" "" out_text "${out}")
string(REGEX REPLACE "\n$" "" err_text "${err}")
if(DEFINED OUT_REGEX AND NOT out_text MATCHES "${OUT_REGEX}")
  message(FATAL_ERROR "${what}: stdout does not match '${OUT_REGEX}':\n${out}")
endif()
if(DEFINED ERR_REGEX AND NOT err_text MATCHES "${ERR_REGEX}")
  message(FATAL_ERROR "${what}: stderr does not match '${ERR_REGEX}':\n${err}")
endif()
if(ONE_LINE AND (err_text MATCHES "\n" OR NOT err MATCHES "\n$"))
  message(FATAL_ERROR "${what}: stderr is not exactly one line:\n${err}")
endif()
if(JSON)
  string(JSON n ERROR_VARIABLE json_error LENGTH "${out}" stages)
  if(json_error)
    message(FATAL_ERROR "${what}: stdout is not the expected JSON (${json_error}):\n${out}")
  endif()
  message(STATUS "${what}: valid JSON, ${n} stages")
endif()
message(STATUS "${what}: exit status ${rc} as expected")
