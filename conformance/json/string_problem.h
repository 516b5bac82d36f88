// SPDX-License-Identifier: Apache-2.0
#pragma once

#include <cstddef>

namespace fhir::json {
// Why a decoded JSON string cannot be kept, or null when it can: a NUL character (\u0000), or an
// unpaired low-surrogate escape (\uDC00-\uDFFF), which RapidJSON 1.1 decodes to bytes that are
// not UTF-8 (it validates raw bytes only). Every SAX handler of ours asks this of each string and
// key (found by tests/fuzz/json_fuzz and spec_loader_fuzz).
const char* stringProblem(const char* text, size_t length);

}  // namespace fhir::json
