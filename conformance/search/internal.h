// SPDX-License-Identifier: Apache-2.0
#pragma once
// Shared by the search sources; not part of the public API.
#include <string>
#include <string_view>

namespace fhir::search {

// "Patient/1", "https://x/fhir/Patient/1/_history/2" -> type, id; absolute references keep the
// whole text in url; "urn:uuid:..." only url; "#contained" nothing.
struct ParsedReference {
  std::string type;
  std::string id;
  std::string url;
};
ParsedReference parseReference(std::string_view reference);

}  // namespace fhir::search
