// SPDX-License-Identifier: Apache-2.0
// FHIRPath functions, section "FHIR-specific extensions (FHIR R4 FHIRPath section)": extension(),
// hasValue(), getValue(), htmlChecks(), conformsTo(), memberOf(), resolve().

#include <algorithm>
#include <cerrno>
#include <climits>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <unordered_map>

#include "conformance/fhirpath/functions.h"

namespace fhir::fhirpath {

Collection Evaluator::fhirFunction(const Node& node, const Collection& focus) {
  FunctionCall call(*this, node, focus);
  switch (node.fn) {
    case Fn::kExtension: {
      auto url = call.stringArg(0);
      if (!url) return {};
      Collection out;
      for (const Item& item : focus) {
        Collection extensions;
        navigate(item, "extension", extensions);
        for (const Item& extension : extensions) {
          if (extension.value() == nullptr || !extension.value()->IsObject()) continue;
          if (json::getString(*extension.value(), "url") == *url) out.push_back(extension);
        }
      }
      return out;
    }
    case Fn::kHasValue: {
      const Item* item = focus.size() == 1 ? &focus[0] : nullptr;
      if (item == nullptr) return boolean(false);
      if (!item->isNode()) return boolean(true);
      return boolean(item->value() != nullptr && !item->value()->IsObject() &&
                     !item->value()->IsArray());
    }
    case Fn::kGetValue: {
      const Item* item = focus.size() == 1 ? &focus[0] : nullptr;
      if (item == nullptr) return {};
      Item value = toSystem(*item);
      if (value.isNode()) return {};
      return {value};
    }
    case Fn::kHtmlChecks: {
      // Basic narrative check: no script/object/embed elements, no event-handler attributes.
      const Item* item = call.single("htmlChecks()");
      if (item == nullptr) return boolean(false);
      Val val = view(*item);
      if (val.kind != Item::Kind::kString) return boolean(false);
      std::string lower;
      for (char c : val.text) lower.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
      static constexpr std::string_view kForbidden[] = {"<script", "<object", "<embed", "<iframe",
                                                        "<form", "<applet", "javascript:"};
      for (auto token : kForbidden) {
        if (lower.find(token) != std::string::npos) return boolean(false);
      }
      // An on*= handler attribute inside a tag. RE2, not std::regex: the narrative is input.
      static const regex::RegexPtr kHandler =
          *regex::Regex::compile(R"(<[^>]*\son[a-z]+\s*=)", regex::Dialect::kFhirPath);
      if (kHandler->search(lower)) return boolean(false);
      return boolean(lower.rfind("<div", 0) == 0 || lower.find("<div") != std::string::npos);
    }
    case Fn::kConformsTo: {
      auto url = call.stringArg(0);
      if (!url) return {};
      Collection out;
      for (const Item& item : focus) {
        if (context_.conforms_to) {
          auto result = context_.conforms_to(*url, item);
          if (result) out.push_back(Item::boolean(*result));
          continue;
        }
        constexpr std::string_view kCore = "http://hl7.org/fhir/StructureDefinition/";
        if (url->rfind(kCore, 0) != 0) {
          throw EvalError{"conformsTo(): unknown profile '" + std::string(*url) + "'"};
        }
        std::string type(url->substr(kCore.size()));
        if (model_ != nullptr && model_->type(type) == nullptr) {
          throw EvalError{"conformsTo(): unknown profile '" + std::string(*url) + "'"};
        }
        out.push_back(Item::boolean(isType(item, "FHIR", type)));
      }
      return out;
    }
    case Fn::kMemberOf: {
      auto url = call.stringArg(0);
      if (!url) return {};
      Collection out;
      for (const Item& item : focus) {
        if (!context_.member_of) continue;
        auto result = context_.member_of(*url, item);
        if (result) out.push_back(Item::boolean(*result));
      }
      return out;
    }
    case Fn::kResolve: {
      Collection out;
      for (const Item& item : focus) {
        std::string reference;
        Val val = view(item);
        if (val.kind == Item::Kind::kString) {
          reference = std::string(val.text);
        } else if (item.isNode() && item.value() != nullptr && item.value()->IsObject()) {
          reference = std::string(json::getString(*item.value(), "reference").value_or(""));
        }
        if (reference.empty()) continue;
        bool found = false;
        auto searchContained = [&](const Item& resource) {
          if (found || !resource.isNode() || resource.value() == nullptr ||
              reference[0] != '#') {
            return;
          }
          const json::Value* contained = json::find(*resource.value(), "contained");
          if (contained == nullptr || !contained->IsArray()) return;
          for (const auto& entry : contained->GetArray()) {
            if (json::getString(entry, "id") == std::string_view(reference).substr(1)) {
              out.push_back(makeResourceItem(&entry, model_));
              found = true;
              return;
            }
          }
        };
        searchContained(resourceItem());
        searchContained(rootItem());
        if (!found && rootItem().isNode() && rootItem().value() != nullptr &&
            rootItem().typeName() == "Bundle") {
          const json::Value* entries = json::find(*rootItem().value(), "entry");
          if (entries != nullptr && entries->IsArray()) {
            for (const auto& entry : entries->GetArray()) {
              const json::Value* resource = json::find(entry, "resource");
              if (resource == nullptr || !resource->IsObject()) continue;
              auto full_url = json::getString(entry, "fullUrl");
              auto type = json::getString(*resource, "resourceType");
              auto id = json::getString(*resource, "id");
              bool match = (full_url && *full_url == reference) ||
                           (type && id &&
                            (reference == std::string(*type) + "/" + std::string(*id) ||
                             (reference.size() > type->size() + id->size() + 1 &&
                              reference.compare(reference.size() - type->size() - id->size() - 1,
                                                std::string::npos,
                                                "/" + std::string(*type) + "/" + std::string(*id)) == 0)));
              if (match) {
                out.push_back(makeResourceItem(resource, model_));
                found = true;
                break;
              }
            }
          }
        }
        if (!found && context_.resolve) {
          if (auto resolved = context_.resolve(reference)) out.push_back(*resolved);
        }
      }
      return out;
    }
    default: break;
  }
  throw EvalError{"function " + node.name + "() is not available"};
}

}  // namespace fhir::fhirpath
