// SPDX-License-Identifier: Apache-2.0
// Bindings (required, extensible; unchecked bindings reported) and Coding checks against local
// code systems (unknown codes, wrong displays).
#include <cctype>

#include "conformance/validator/instance_walker.h"
#include "conformance/validator/validator_impl.h"

namespace fhir::validator {

void InstanceWalker::checkBinding(const json::Value& value, std::string_view type,
                                  const Binding& binding) {
  for (const Binding& extra : binding.additional) checkBinding(value, type, extra);
  if (binding.strength != BindingStrength::kRequired &&
      binding.strength != BindingStrength::kExtensible) {
    return;
  }
  if (binding.value_set.empty()) return;
  const terminology::Terminology& terminology = validator_.terminology();
  const terminology::Expansion& expansion = terminology.expand(binding.value_set);
  bool required = binding.strength == BindingStrength::kRequired;
  if (!expansion.found) {
    // Never silent: the HL7 validator warns that the value set could not be found.
    report(validator_.uncheckedBindingSeverity(), "not-supported",
           "The value set '" + binding.value_set + "' of the " + (required ? "required" : "extensible") +
               " binding is not available locally, so the code was not checked");
    return;
  }
  Severity severity = required ? Severity::kError : Severity::kWarning;
  std::string where = "the value set '" + expansion.label() + "' (" + expansion.versionedUrl() + ")";
  // A required binding whose value set cannot be expanded locally far enough to decide (an
  // imported value set or a code system that is not available) reports the code as not checked.
  auto unchecked = [&](const std::string& label) {
    if (!required) return;
    report(validator_.uncheckedBindingSeverity(), "not-supported",
           "The code " + label + " was not checked against " + where +
               ": the value set cannot be fully expanded locally (it needs a code system or value set "
               "that is not available)");
  };
  if (type == "code") {
    std::string_view code = json::stringView(value);
    terminology::Membership state = terminology.contains(expansion, "", code);
    if (state == terminology::Membership::kUnknown) unchecked("'" + std::string(code) + "'");
    if (state == terminology::Membership::kNotMember) {
      report(severity, "code-invalid",
             "The value provided ('" + std::string(code) + "') was not found in " + where +
                 (required ? ", and a code is required from this value set"
                           : ", and a code should come from this value set unless it has no suitable code"));
    }
    return;
  }
  auto codingState = [&](const json::Value& coding, std::string& label) {
    std::string system(json::getString(coding, "system").value_or(""));
    std::string code(json::getString(coding, "code").value_or(""));
    label = system + "#" + code;
    if (code.empty()) return terminology::Membership::kUnknown;
    return terminology.contains(expansion, system, code);
  };
  if (type == "Coding" || type == "Quantity") {
    std::string label;
    terminology::Membership state = codingState(value, label);
    if (state == terminology::Membership::kUnknown && label != "#" && label.back() != '#') unchecked(label);
    if (state == terminology::Membership::kNotMember) {
      report(severity, "code-invalid",
             std::string(type == "Coding" ? "The Coding provided (" : "The code provided (") + label +
                 ") was not found in " + where +
                 (required ? ", and a code is required from this value set"
                           : ", and a code should come from this value set unless it has no suitable code"));
    }
    return;
  }
  if (type == "CodeableConcept") {
    const json::Value* codings = json::find(value, "coding");
    if (!codings || !codings->IsArray() || codings->Empty()) return;
    std::string labels;
    bool undecided = false;
    for (const json::Value& coding : codings->GetArray()) {
      if (!coding.IsObject()) return;
      std::string label;
      terminology::Membership state = codingState(coding, label);
      if (state == terminology::Membership::kMember) return;
      if (state == terminology::Membership::kUnknown) {
        if (label.back() == '#') return;  // a coding without a code (text only)
        undecided = true;
      }
      if (!labels.empty()) labels += ", ";
      labels += label;
    }
    if (undecided) {
      unchecked("(" + labels + ")");
      return;
    }
    report(severity, "code-invalid",
           "None of the codings provided are in " + where +
               (required ? ", and a coding from this value set is required"
                         : ", and a coding should come from this value set unless it has no suitable code") +
               " (codes = " + labels + ")");
  }
}

void InstanceWalker::checkCoding(const json::Value& coding) {
  auto system = json::getString(coding, "system");
  auto code = json::getString(coding, "code");
  if (!system || system->empty()) return;
  const terminology::Terminology& terminology = validator_.terminology();
  const terminology::CodeSystemIndex* index = terminology.codeSystem(*system);
  if (!index) {
    if (validator_.registry().valueSet(*system)) {
      reportAt(Severity::kError, "invalid", path_ + ".system",
               "The Coding references a value set, not a code system ('" + std::string(*system) + "')");
    }
    return;
  }
  if (code && index->complete() && !index->has(*code)) {
    reportAt(Severity::kError, "code-invalid", path_ + ".code",
             "Unknown code '" + std::string(*code) + "' in the CodeSystem '" + std::string(*system) +
                 "' version '" + (index->version.empty() ? std::string("null") : index->version) + "'");
    return;
  }
  auto display = json::getString(coding, "display");
  if (!code || !display) return;
  auto known = index->display.find(std::string(*code));
  if (known == index->display.end() || known->second.empty()) return;
  auto normalized = [](std::string_view text) {
    std::string out;
    for (char c : text) {
      if (c == ' ' || c == '\t' || c == '\n') {
        if (!out.empty() && out.back() != ' ') out += ' ';
      } else {
        out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      }
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    return out;
  };
  std::string given = normalized(*display);
  std::string expected = normalized(known->second);
  // Some R4 core code systems (v3-TribalEntityUS) carry displays cut at 50 characters; the full
  // display that starts with the cut one is the right one.
  bool truncated = known->second.size() == 50 && given.size() > expected.size() &&
                   given.compare(0, expected.size(), expected) == 0;
  if (given != expected && !truncated) {
    reportAt(Severity::kError, "invalid", path_ + ".display",
             "Wrong Display Name '" + std::string(*display) + "' for " + std::string(*system) + "#" +
                 std::string(*code) + ". Valid display is '" + known->second + "'");
  }
}

}  // namespace fhir::validator
