// SPDX-License-Identifier: Apache-2.0
//! @file version.hpp
//! Library version; the launch code sits in an inline namespace named after it.
#pragma once

#define AGOQ_VERSION_MAJOR 0
#define AGOQ_VERSION_MINOR 1
#define AGOQ_VERSION_PATCH 0
#define AGOQ_VERSION (AGOQ_VERSION_MAJOR * 10000 + AGOQ_VERSION_MINOR * 100 + AGOQ_VERSION_PATCH)

namespace agoq {
//! The version this header was built as, e.g. 100 for 0.1.0.
inline constexpr int version = AGOQ_VERSION;
} // namespace agoq
