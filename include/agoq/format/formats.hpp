// SPDX-License-Identifier: Apache-2.0
//! @file format/formats.hpp
//! Umbrella for the number formats: vocabulary, scales, Philox, int/fp8/fp4 codecs and the
//! generic block codec.
#pragma once

#include "agoq/format/codec.hpp"
#include "agoq/format/format.hpp"
#include "agoq/format/fp4.hpp"
#include "agoq/format/fp8.hpp"
#include "agoq/format/int.hpp"
#include "agoq/format/philox.hpp"
#include "agoq/format/scale.hpp"
