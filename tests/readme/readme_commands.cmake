# SPDX-License-Identifier: Apache-2.0
# cmake -DREADME=<README.md> -DBINARY_DIR=<build dir> -DWORK_DIR=<dir> -P readme_commands.cmake
#
# Runs every command of README.md's ```console blocks: a line "$ <command>" is a command, the
# lines after it (up to the next "$ " or the block's end) its expected standard output. Each
# command runs in bash from WORK_DIR (standing in for the repository's root) with the preset
# build directories build/demo and build/test both replaced by BINARY_DIR, which has every
# example. A command fails the test if it
# exits non-zero or, when output is shown, prints anything else (trailing spaces and newlines
# aside). ```sh blocks are not run (they need a GPU, or are the workflows themselves).
foreach(v README BINARY_DIR WORK_DIR)
  if(NOT DEFINED ${v})
    message(FATAL_ERROR "readme_commands.cmake: -D${v}=... is required")
  endif()
endforeach()

include(${CMAKE_CURRENT_LIST_DIR}/readme_lines.cmake)
read_lines(${README} lines)

file(MAKE_DIRECTORY ${WORK_DIR})
set(failures 0)
set(ran 0)
# Runs the pending command (if any) and compares its output; uses cmd, cmd_line, expected.
macro(flush)
  if(NOT cmd STREQUAL "")
    restore(cmd)
    restore(expected)
    string(REGEX REPLACE "(^|[ =])build/(test|demo)(/|$| )" "\\1${BINARY_DIR}\\3" run "${cmd}")
    message(STATUS "README.md:${cmd_line}: ${cmd}")
    execute_process(COMMAND bash -c "${run}" WORKING_DIRECTORY ${WORK_DIR}
                    RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
    math(EXPR ran "${ran} + 1")
    if(NOT rc EQUAL 0)
      message("README.md:${cmd_line}: '${cmd}' exited with ${rc}\n${run}\nstdout:\n${out}\nstderr:\n${err}")
      math(EXPR failures "${failures} + 1")
    elseif(NOT expected STREQUAL "")
      string(REGEX REPLACE "[ \t]+\n" "\n" out "${out}")
      string(REGEX REPLACE "\n+$" "" out "${out}")
      string(REGEX REPLACE "[ \t]+\n" "\n" expected "${expected}")
      string(REGEX REPLACE "\n+$" "" expected "${expected}")
      if(NOT out STREQUAL expected)
        message("README.md:${cmd_line}: '${cmd}' printed\n${out}\ninstead of what README.md shows:\n${expected}")
        math(EXPR failures "${failures} + 1")
      endif()
    endif()
  endif()
  set(cmd "")
  set(expected "")
endmacro()

set(in_block OFF)
set(lineno 0)
set(cmd "")
set(expected "")
foreach(line IN LISTS lines)
  math(EXPR lineno "${lineno} + 1")
  string(REPLACE "@AGOQ_EOL@" "" line "${line}")
  if(NOT in_block)
    if(line MATCHES "^```console *$")
      set(in_block ON)
    endif()
    continue()
  endif()
  if(line MATCHES "^```")
    flush()
    set(in_block OFF)
  elseif(line MATCHES "^\\$ (.*)$")
    set(next "${CMAKE_MATCH_1}") # before flush(), whose regexes overwrite CMAKE_MATCH_1
    flush()
    set(cmd "${next}")
    set(cmd_line ${lineno})
  elseif(NOT cmd STREQUAL "")
    string(APPEND expected "${line}\n")
  endif()
endforeach()
if(ran EQUAL 0)
  message(FATAL_ERROR "README.md has no ```console command: is this the right file?")
endif()
if(failures GREATER 0)
  message(FATAL_ERROR "${failures} of ${ran} README.md commands failed; see above")
endif()
message(STATUS "all ${ran} README.md commands ran as shown")
