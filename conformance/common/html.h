// SPDX-License-Identifier: Apache-2.0
#pragma once

// HTML escaping of text, shared by FHIRPath's escape('html') (conformance/fhirpath) and the
// scorecard pages (gateway/scorecard).

#include <string>
#include <string_view>

namespace fhir {

// `&`, `<`, `>`, `"` and `'` as character references; everything else as it is.
inline std::string htmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace fhir
