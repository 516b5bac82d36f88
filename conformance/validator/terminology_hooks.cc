// SPDX-License-Identifier: Apache-2.0
#include "conformance/validator/terminology_hooks.h"

namespace fhir::validator {
namespace {

terminology::Membership codingMembership(const terminology::Terminology& terminology,
                                         const terminology::Expansion& expansion,
                                         const json::Value& coding) {
  if (!coding.IsObject()) return terminology::Membership::kUnknown;
  auto code = json::getString(coding, "code");
  if (!code) return terminology::Membership::kUnknown;
  auto system = json::getString(coding, "system");
  return terminology.contains(expansion, system.value_or(""), *code);
}

std::optional<bool> answer(terminology::Membership membership) {
  if (membership == terminology::Membership::kMember) return true;
  if (membership == terminology::Membership::kNotMember) return false;
  return std::nullopt;
}

}  // namespace

std::optional<bool> memberOf(const terminology::Terminology& terminology,
                             std::string_view value_set, const fhirpath::Item& coded) {
  const terminology::Expansion& expansion = terminology.expand(value_set);
  if (!expansion.found) return std::nullopt;
  if (!coded.isNode()) {
    if (coded.kind() != fhirpath::Item::Kind::kString) return std::nullopt;
    return answer(terminology.contains(expansion, "", coded.text()));
  }
  const json::Value* value = coded.value();
  if (!value) return std::nullopt;
  if (json::isString(*value)) return answer(terminology.contains(expansion, "", json::stringView(*value)));
  if (!value->IsObject()) return std::nullopt;
  const json::Value* codings = json::find(*value, "coding");
  bool concept_like = coded.typeName() == "CodeableConcept" || (codings && codings->IsArray());
  if (!concept_like) return answer(codingMembership(terminology, expansion, *value));
  // A CodeableConcept is a member when one of its codings is; not a member when every coding
  // is decided and none is.
  if (!codings || !codings->IsArray() || codings->Empty()) return std::nullopt;
  bool all_decided = true;
  for (const json::Value& coding : codings->GetArray()) {
    terminology::Membership membership = codingMembership(terminology, expansion, coding);
    if (membership == terminology::Membership::kMember) return true;
    if (membership == terminology::Membership::kUnknown) all_decided = false;
  }
  if (all_decided) return false;
  return std::nullopt;
}

void installTerminology(fhirpath::EvaluationContext& context,
                        const terminology::Terminology& terminology, std::string* undecided) {
  const terminology::Terminology* local = &terminology;
  context.member_of = [local, undecided](std::string_view value_set, const fhirpath::Item& coded) {
    std::optional<bool> answer = memberOf(*local, value_set, coded);
    if (!answer && undecided) *undecided = std::string(value_set);
    return answer;
  };
}

}  // namespace fhir::validator
