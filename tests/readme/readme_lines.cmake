# SPDX-License-Identifier: Apache-2.0
# Shared by readme_blocks.cmake and readme_commands.cmake: README.md as a CMake list of lines.
# Characters that CMake lists treat specially are swapped for placeholders first; restore(var)
# puts them back in a variable before it is written or run.

# Sets `out` to the lines of the file `path` (each ends in the marker @AGOQ_EOL@, so no element
# is empty).
function(read_lines path out)
  file(READ ${path} text)
  string(REPLACE "\\" "@AGOQ_BS@" text "${text}")
  string(REPLACE ";" "@AGOQ_SC@" text "${text}")
  string(REPLACE "[" "@AGOQ_LB@" text "${text}")
  string(REPLACE "]" "@AGOQ_RB@" text "${text}")
  string(REPLACE "\n" "@AGOQ_EOL@;" lines "${text}")
  set(${out} "${lines}" PARENT_SCOPE)
endfunction()

function(restore var)
  set(t "${${var}}")
  string(REPLACE "@AGOQ_SC@" ";" t "${t}")
  string(REPLACE "@AGOQ_LB@" "[" t "${t}")
  string(REPLACE "@AGOQ_RB@" "]" t "${t}")
  string(REPLACE "@AGOQ_BS@" "\\" t "${t}")
  set(${var} "${t}" PARENT_SCOPE)
endfunction()
