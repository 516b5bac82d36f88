// SPDX-License-Identifier: Apache-2.0
// Invariants: FHIRPath constraints with the definition's severity, and the ones checked natively
// (README: ele-1, ext-1, dom-3, ref-1, tim-9, txt-1, txt-2).
#include "conformance/validator/instance_walker.h"

#include <optional>

#include "conformance/validator/primitives.h"
#include "conformance/validator/validator_impl.h"

namespace fhir::validator {

namespace {

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool containsNoCase(std::string_view text, std::string_view needle) {
  if (needle.size() > text.size()) return false;
  for (size_t start = 0; start + needle.size() <= text.size(); ++start) {
    size_t index = 0;
    while (index < needle.size() && lower(text[start + index]) == needle[index]) ++index;
    if (index == needle.size()) return true;
  }
  return false;
}

}  // namespace

// txt-1: only basic formatting: no active content elements, no event-handler attributes, no
// javascript: URLs.
bool narrativeIsSafe(std::string_view div) {
  auto startsWithNoCase = [&](size_t at, std::string_view word) {
    if (at + word.size() > div.size()) return false;
    for (size_t index = 0; index < word.size(); ++index) {
      if (lower(div[at + index]) != word[index]) return false;
    }
    return true;
  };
  bool in_tag = false;
  bool has_div = false;
  char quote = 0;
  for (size_t i = 0; i < div.size(); ++i) {
    char c = div[i];
    if ((c == 'j' || c == 'J') && startsWithNoCase(i, "javascript:")) return false;
    if (!in_tag) {
      if (c == '<') {
        in_tag = true;
        for (std::string_view tag : {"script", "object", "embed", "iframe", "form", "applet"}) {
          if (startsWithNoCase(i + 1, tag)) return false;
        }
        has_div = has_div || startsWithNoCase(i + 1, "div");
      }
      continue;
    }
    if (quote) {
      if (c == quote) quote = 0;
      continue;
    }
    if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '>') {
      in_tag = false;
    } else if ((c == ' ' || c == '\t' || c == '\n' || c == '\r') && i + 3 < div.size() &&
               lower(div[i + 1]) == 'o' && lower(div[i + 2]) == 'n') {
      size_t j = i + 3;
      while (j < div.size() && lower(div[j]) >= 'a' && lower(div[j]) <= 'z') ++j;
      while (j < div.size() && (div[j] == ' ' || div[j] == '\t')) ++j;
      if (j > i + 3 && j < div.size() && div[j] == '=') return false;
    }
  }
  return has_div;
}

// txt-2: some non-whitespace text outside the tags.
bool narrativeHasContent(std::string_view div) {
  bool in_tag = false;
  for (char c : div) {
    if (c == '<') in_tag = true;
    else if (c == '>') in_tag = false;
    else if (!in_tag && c != ' ' && c != '\t' && c != '\n' && c != '\r') return true;
  }
  return containsNoCase(div, "<img");
}

void InstanceWalker::checkConstraints(const std::vector<Constraint>& constraints,
                                      const json::Value* value, const json::Value* extension,
                                      std::string_view type) {
  for (const Constraint& constraint : constraints) {
    const std::string& key = constraint.key;
    // Checked natively elsewhere: ele-1 (walkObject), ext-1 (validateExtension), dom-3
    // (checkContainedReferenced: the FHIRPath form walks descendants() of the whole resource
    // for each contained resource).
    if (key == "ele-1" || key == "ext-1" || key == "dom-3") continue;
    if (key == "ref-1") {
      // ref-1 natively: %rootResource differs between contained resources and Bundle entries in
      // the reference validator; a local reference '#id' must name a resource contained in the
      // resource that holds the reference (or its container).
      checkLocalReference(value, constraint);
      continue;
    }
    std::optional<bool> passed;
    if (key == "txt-1" || key == "txt-2") {
      // htmlChecks() natively: the FHIRPath form lowercases and regex-scans the whole div on every
      // evaluation, which dominated validation time.
      // Declared on Narrative.div (the xhtml string); accept the Narrative object too.
      const json::Value* div = value && value->IsObject() ? json::find(*value, "div") : value;
      if (!div || !json::isString(*div)) continue;
      passed = key == "txt-1" ? narrativeIsSafe(json::stringView(*div))
                              : narrativeHasContent(json::stringView(*div));
    } else if (key == "tim-9") {
      // tim-9 reads `when in ('C' | 'CM' | 'CD' | 'CV')` on a repeating `when`; strict FHIRPath
      // makes that an error (HL7 Jira FHIR-35990). The reference validator's `in` is true when
      // every left item is in the right collection; we evaluate it the same way.
      passed = true;
      if (value && value->IsObject() && json::find(*value, "offset")) {
        const json::Value* when = json::find(*value, "when");
        bool all_meal = when && when->IsArray() && !when->Empty();
        if (all_meal) {
          for (const json::Value& item : when->GetArray()) {
            std::string_view code = json::isString(item) ? json::stringView(item) : std::string_view();
            if (code != "C" && code != "CM" && code != "CD" && code != "CV") all_meal = false;
          }
        }
        passed = when && !all_meal;
      }
    } else {
      if (!constraint.expression) continue;
      context_.resource = resource_;
      context_.root_resource = root_resource_;
      // Backbone elements have no type of their own in the FHIRPath model: navigate them untyped.
      // Resources typed as Resource: let FHIRPath infer the type from resourceType.
      std::string_view item_type = type == "BackboneElement" || type == "Element" || type == "Resource" ||
                                           type == "DomainResource"
                                       ? std::string_view()
                                       : type;
      undecided_value_set_.clear();
      auto result = fhirpath::evaluateBoolean(
          *constraint.expression, fhirpath::Item::node(value, item_type, extension), context_);
      if (!result.ok()) {
        report(Severity::kInformation, "informational",
               "Constraint " + key + " could not be evaluated: " + result.message());
        continue;
      }
      passed = *result;
      if (passed.has_value() && !*passed && !undecided_value_set_.empty()) {
        // memberOf() could not be answered locally: the failure may be ours, not the data's.
        report(validator_.uncheckedBindingSeverity(), "not-supported",
               "Constraint " + key + " was not checked: it needs the value set '" + undecided_value_set_ +
                   "', which cannot be expanded locally ('" + constraint.human + "')");
        continue;
      }
    }
    if (passed.has_value() && !*passed) {
      report(constraint.severity, "invariant",
             "Constraint failed: " + key + ": '" + constraint.human + "'");
    }
  }
}

}  // namespace fhir::validator
