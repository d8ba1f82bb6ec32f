# SPDX-License-Identifier: Apache-2.0
# find_package(NCCL [<version>] [REQUIRED]): finds NCCL next to the CUDA toolkit, under NCCL_ROOT
# (variable or environment) / $NCCL_HOME, or in system paths.
#
# Defines NCCL_FOUND, NCCL_INCLUDE_DIR, NCCL_LIBRARY, NCCL_VERSION (e.g. 2.28.9, read from the
# NCCL_MAJOR / NCCL_MINOR / NCCL_PATCH lines of nccl.h), NCCL_VERSION_MAJOR / _MINOR / _PATCH and
# the imported target NCCL::NCCL. A requested <version> is a minimum (or exact with EXACT); an
# older NCCL leaves NCCL_FOUND false and says why.
include(FindPackageHandleStandardArgs)
find_package(CUDAToolkit QUIET)
find_path(NCCL_INCLUDE_DIR nccl.h
  HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} $ENV{NCCL_HOME} ${CUDAToolkit_INCLUDE_DIRS}
  PATH_SUFFIXES include)
find_library(NCCL_LIBRARY NAMES nccl
  HINTS ${NCCL_ROOT} $ENV{NCCL_ROOT} $ENV{NCCL_HOME} ${CUDAToolkit_LIBRARY_DIR}
  PATH_SUFFIXES lib lib64)
unset(NCCL_VERSION)
if(NCCL_INCLUDE_DIR AND EXISTS "${NCCL_INCLUDE_DIR}/nccl.h")
  foreach(_nccl_part MAJOR MINOR PATCH)
    file(STRINGS "${NCCL_INCLUDE_DIR}/nccl.h" _nccl_line
         REGEX "^#define NCCL_${_nccl_part} +[0-9]+")
    if(_nccl_line MATCHES "NCCL_${_nccl_part} +([0-9]+)")
      set(NCCL_VERSION_${_nccl_part} "${CMAKE_MATCH_1}")
    endif()
  endforeach()
  if(DEFINED NCCL_VERSION_MAJOR AND DEFINED NCCL_VERSION_MINOR)
    set(NCCL_VERSION "${NCCL_VERSION_MAJOR}.${NCCL_VERSION_MINOR}")
    if(DEFINED NCCL_VERSION_PATCH)
      string(APPEND NCCL_VERSION ".${NCCL_VERSION_PATCH}")
    endif()
  endif()
  unset(_nccl_line)
  unset(_nccl_part)
endif()
find_package_handle_standard_args(NCCL REQUIRED_VARS NCCL_LIBRARY NCCL_INCLUDE_DIR
                                  VERSION_VAR NCCL_VERSION HANDLE_VERSION_RANGE)
if(NCCL_FOUND AND NOT TARGET NCCL::NCCL)
  add_library(NCCL::NCCL UNKNOWN IMPORTED)
  set_target_properties(NCCL::NCCL PROPERTIES IMPORTED_LOCATION "${NCCL_LIBRARY}"
                                              INTERFACE_INCLUDE_DIRECTORIES "${NCCL_INCLUDE_DIR}")
endif()
mark_as_advanced(NCCL_INCLUDE_DIR NCCL_LIBRARY)
