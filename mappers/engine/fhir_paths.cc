// SPDX-License-Identifier: Apache-2.0
#include "mappers/engine/fhir_paths.h"

#include <cctype>
#include <fstream>
#include <sstream>

namespace fhir::mappers::engine {
namespace {

std::string capitalize(std::string text) {
  if (!text.empty()) text[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(text[0])));
  return text;
}

}  // namespace

Result<std::vector<PathStep>> parseTargetPath(std::string_view text) {
  std::vector<PathStep> steps;
  size_t position = 0;
  while (position <= text.size()) {
    size_t end = text.find('.', position);
    std::string_view part = text.substr(position, end == std::string_view::npos ? std::string_view::npos : end - position);
    PathStep step;
    size_t bracket = part.find('[');
    step.name = std::string(part.substr(0, bracket));
    if (step.name.empty()) return Error{"empty step in path '" + std::string(text) + "'"};
    for (char c : step.name) {
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') {
        return Error{"bad character in path '" + std::string(text) + "'"};
      }
    }
    if (bracket != std::string_view::npos) {
      std::string_view index = part.substr(bracket + 1);
      if (index.empty() || index.back() != ']') return Error{"unclosed [ in path '" + std::string(text) + "'"};
      index.remove_suffix(1);
      if (index.empty()) {
        step.index = PathStep::Index::kAppend;
      } else {
        step.index = PathStep::Index::kAt;
        for (char c : index) {
          if (!std::isdigit(static_cast<unsigned char>(c))) return Error{"bad index in path '" + std::string(text) + "'"};
        }
        step.at = std::stoul(std::string(index));
      }
    }
    steps.push_back(std::move(step));
    if (end == std::string_view::npos) break;
    position = end + 1;
  }
  return steps;
}

const FhirPaths::Definition* FhirPaths::definition(const std::string& type) {
  auto found = cache_.find(type);
  if (found != cache_.end()) return found->second.get();
  std::unique_ptr<Definition> result;
  std::ifstream in(dir_ + "/StructureDefinition-" + type + ".json", std::ios::binary);
  if (in) {
    std::ostringstream text;
    text << in.rdbuf();
    auto doc = json::parse(text.str());
    if (doc.ok()) {
      result = std::make_unique<Definition>();
      const json::Value* snapshot = json::find(*doc, "snapshot");
      const json::Value* elements = snapshot ? json::find(*snapshot, "element") : nullptr;
      if (elements && elements->IsArray()) {
        for (const json::Value& element : elements->GetArray()) {
          auto path = json::getString(element, "path");
          if (!path) continue;
          Element info;
          if (auto max = json::getString(element, "max")) info.repeating = *max != "1" && *max != "0";
          if (const json::Value* types = json::find(element, "type"); types && types->IsArray()) {
            for (const json::Value& entry : types->GetArray()) {
              if (auto code = json::getString(entry, "code")) {
                // FHIRPath system types of primitive values (id, extension url) count as strings.
                std::string name(*code);
                if (name.rfind("http://hl7.org/fhirpath/System.", 0) == 0) name = "string";
                info.types.push_back(name);
              }
            }
          }
          if (auto reference = json::getString(element, "contentReference")) {
            std::string text(*reference);
            size_t hash = text.find('#');
            info.content_reference = hash == std::string::npos ? text : text.substr(hash + 1);
          }
          result->elements.emplace(std::string(*path), std::move(info));
        }
      }
    }
  }
  const Definition* pointer = result.get();
  cache_.emplace(type, std::move(result));
  return pointer;
}

Result<std::string> FhirPaths::check(const std::string& start, const std::vector<PathStep>& steps) {
  // `context` is the path prefix inside definition `owner` (e.g. owner "Claim", context "Claim.item").
  std::string owner = start.substr(0, start.find('.'));
  std::string context = start;
  std::string walked;
  for (const PathStep& step : steps) {
    walked += (walked.empty() ? "" : ".") + step.name;
    const Definition* def = definition(owner);
    if (!def) return Error{"unknown type " + owner};
    std::string path = context + "." + step.name;
    auto found = def->elements.find(path);
    std::string chosen_type;
    if (found == def->elements.end()) {
      // A choice element: valueString matches value[x] with type string.
      for (size_t cut = step.name.size(); cut > 0; --cut) {
        if (!std::isupper(static_cast<unsigned char>(step.name[cut - 1]))) continue;
        std::string base = context + "." + step.name.substr(0, cut - 1) + "[x]";
        auto choice = def->elements.find(base);
        if (choice == def->elements.end()) continue;
        std::string suffix = step.name.substr(cut - 1);
        for (const std::string& type : choice->second.types) {
          if (capitalize(type) == suffix) {
            found = choice;
            chosen_type = type;
          }
        }
        break;
      }
      if (found == def->elements.end()) return Error{"unknown element '" + walked + "' (no " + path + " in R4)"};
    }
    const Element& element = found->second;
    if (element.repeating && step.index == PathStep::Index::kNone) {
      return Error{"'" + walked + "' repeats: write " + step.name + "[0] or " + step.name + "[]"};
    }
    if (!element.repeating && step.index != PathStep::Index::kNone) {
      return Error{"'" + walked + "' does not repeat: write it without [index]"};
    }
    if (!element.content_reference.empty()) {
      context = element.content_reference;
      owner = context.substr(0, context.find('.'));
      continue;
    }
    if (chosen_type.empty()) {
      if (element.types.size() != 1) return Error{"'" + walked + "' has no single type"};
      chosen_type = element.types[0];
    }
    if (chosen_type == "BackboneElement" || chosen_type == "Element") {
      context = path;
    } else {
      owner = chosen_type;
      context = chosen_type;
    }
  }
  return context;
}

}  // namespace fhir::mappers::engine
