// SPDX-License-Identifier: Apache-2.0
#pragma once

// Canonical URLs and codes of the alignment IG (contracts/canonicals.md and
// fhir_profiles/alignment/README.md) that mappers emit.

#include <string>
#include <string_view>

namespace fhir::mappers::alignment {

inline constexpr std::string_view kBase = "https://fhir.alignment-gateway.org";

inline std::string profile(std::string_view id) {
  return std::string(kBase) + "/StructureDefinition/" + std::string(id);
}
inline std::string codeSystem(std::string_view id) {
  return std::string(kBase) + "/CodeSystem/" + std::string(id);
}

inline constexpr std::string_view kNpiSystem = "http://hl7.org/fhir/sid/us-npi";
inline constexpr std::string_view kCptSystem = "http://www.ama-assn.org/go/cpt";
inline constexpr std::string_view kNuccSystem = "http://nucc.org/provider-taxonomy";
inline constexpr std::string_view kClaimTypeSystem = "http://terminology.hl7.org/CodeSystem/claim-type";
inline constexpr std::string_view kPrioritySystem = "http://terminology.hl7.org/CodeSystem/processpriority";

}  // namespace fhir::mappers::alignment
