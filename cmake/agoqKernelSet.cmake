# SPDX-License-Identifier: Apache-2.0
# The kernel set (include/agoq/quant/kernel_set.hpp) from three cache lists, as the compile
# definitions agoq::agoq carries to every consumer:
#   AGOQ_FORMATS        all | int2..int8, int2_asym..int8_asym, fp8_e4m3, fp8_e5m2, fp4_e2m1
#   AGOQ_ROUNDINGS      all | nearest_even, stochastic
#   AGOQ_ELEMENT_TYPES  all | float, half, bfloat16 (float is always built: the fp32 accumulators)
# agoq_kernel_set_definitions(<out>) sets <out> to the list of definitions (empty for all three
# "all", the headers' default) and stops configuring with a message naming a bad entry.
set(AGOQ_FORMATS all CACHE STRING
    "Formats agoq's GPU kernels are instantiated for: all, or a list of int2..int8, int2_asym..int8_asym, fp8_e4m3, fp8_e5m2, fp4_e2m1")
set(AGOQ_ROUNDINGS all CACHE STRING
    "Roundings agoq's GPU kernels are instantiated for: all, or a list of nearest_even, stochastic")
set(AGOQ_ELEMENT_TYPES all CACHE STRING
    "Element types agoq's GPU kernels are instantiated for: all, or a list of float, half, bfloat16")

# _agoq_mask(<out> <option> <names> <bits>): OR of 1 << bit for every entry of ${<option>}.
function(_agoq_mask out option names bits)
  set(mask 0)
  if(NOT ${option} STREQUAL "all")
    if("${${option}}" STREQUAL "")
      message(FATAL_ERROR "agoq: ${option} is empty; write 'all' or a list of: ${names}")
    endif()
    foreach(entry IN LISTS ${option})
      list(FIND names "${entry}" i)
      if(i LESS 0)
        string(REPLACE ";" ", " known "${names}")
        message(FATAL_ERROR "agoq: ${option} entry '${entry}' is not one of: all, ${known}")
      endif()
      list(GET bits ${i} bit)
      math(EXPR mask "${mask} | (1 << ${bit})" OUTPUT_FORMAT HEXADECIMAL)
    endforeach()
  endif()
  set(${out} ${mask} PARENT_SCOPE)
endfunction()

function(agoq_kernel_set_definitions out)
  # format f (its enum value) is bit 2 f, its asymmetric variant bit 2 f + 1
  set(names int2 int3 int4 int5 int6 int7 int8 fp8_e4m3 fp8_e5m2 fp4_e2m1
            int2_asym int3_asym int4_asym int5_asym int6_asym int7_asym int8_asym)
  set(bits 0 2 4 6 8 10 12 14 16 18 1 3 5 7 9 11 13)
  _agoq_mask(formats AGOQ_FORMATS "${names}" "${bits}")
  _agoq_mask(roundings AGOQ_ROUNDINGS "nearest_even;stochastic" "0;1")
  _agoq_mask(elements AGOQ_ELEMENT_TYPES "float;half;bfloat16" "0;1;2")
  set(defs "")
  if(NOT formats EQUAL 0)
    list(APPEND defs AGOQ_KERNEL_FORMATS=${formats})
  endif()
  if(NOT roundings EQUAL 0)
    list(APPEND defs AGOQ_KERNEL_ROUNDINGS=${roundings})
  endif()
  if(NOT elements EQUAL 0)
    list(APPEND defs AGOQ_KERNEL_ELEMENTS=${elements})
  endif()
  set(${out} "${defs}" PARENT_SCOPE)
endfunction()
