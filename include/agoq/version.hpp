// SPDX-License-Identifier: Apache-2.0
//! @file version.hpp
//! Library version (semantic versioning; CHANGELOG.md lists every version). The top-level
//! CMakeLists.txt reads the three numbers below, so this file is the only place they are written.
//!
//! Compatibility rule: while the major version is 0, only the same minor version is compatible
//! (0.2.x with 0.2.y); any change of results (codes, scales, decoded values) or of the API bumps
//! the minor version. From 1.0 on, the same major version is compatible.
#pragma once

#define AGOQ_VERSION_MAJOR 0
#define AGOQ_VERSION_MINOR 2
#define AGOQ_VERSION_PATCH 0
//! One integer, for preprocessor comparisons: major * 10000 + minor * 100 + patch (0.2.0: 200).
#define AGOQ_VERSION (AGOQ_VERSION_MAJOR * 10000 + AGOQ_VERSION_MINOR * 100 + AGOQ_VERSION_PATCH)

#define AGOQ_DETAIL_STR2(x) #x
#define AGOQ_DETAIL_STR(x) AGOQ_DETAIL_STR2(x)
//! The version as text, "0.2.0".
#define AGOQ_VERSION_STRING                                                                      \
  AGOQ_DETAIL_STR(AGOQ_VERSION_MAJOR) "." AGOQ_DETAIL_STR(AGOQ_VERSION_MINOR) "." AGOQ_DETAIL_STR( \
      AGOQ_VERSION_PATCH)

namespace agoq {
//! The version as one integer, e.g. 200 for 0.2.0 (for comparisons; print `version_string`).
inline constexpr int version = AGOQ_VERSION;
inline constexpr int version_major = AGOQ_VERSION_MAJOR;
inline constexpr int version_minor = AGOQ_VERSION_MINOR;
inline constexpr int version_patch = AGOQ_VERSION_PATCH;
//! The version as text, e.g. "0.2.0": what the examples' `--version` and the demo print.
inline constexpr const char* version_string = AGOQ_VERSION_STRING;
} // namespace agoq
