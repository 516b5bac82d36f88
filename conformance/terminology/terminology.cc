// SPDX-License-Identifier: Apache-2.0
#include "conformance/terminology/terminology.h"

#include "conformance/regex/regex.h"

#include <algorithm>

namespace fhir::terminology {

struct Terminology::ExpansionSlot {
  std::string key;
  std::once_flag once;
  Expansion expansion;
};

struct Terminology::CodeSystemSlot {
  std::string key;
  std::once_flag once;
  std::unique_ptr<CodeSystemIndex> index;
};

namespace {

std::string text(const json::Value& object, std::string_view key) {
  auto value = json::getString(object, key);
  return value ? std::string(*value) : std::string();
}

std::string key(std::string_view system, std::string_view code) {
  std::string out(system);
  out += '|';
  out += code;
  return out;
}

std::string propertyText(const json::Value& property) {
  for (auto it = property.MemberBegin(); it != property.MemberEnd(); ++it) {
    std::string_view name(it->name.GetString(), it->name.GetStringLength());
    if (name.compare(0, 5, "value") != 0) continue;
    if (json::isString(it->value)) return std::string(json::stringView(it->value));
    if (it->value.IsBool()) return it->value.GetBool() ? "true" : "false";
    if (json::isNumber(it->value)) return json::numberText(it->value);
    if (it->value.IsObject()) return text(it->value, "code");
  }
  return std::string();
}

void indexConcepts(const json::Value& concepts, const std::string* parent, CodeSystemIndex& index) {
  if (!concepts.IsArray()) return;
  for (const json::Value& concept_value : concepts.GetArray()) {
    if (!concept_value.IsObject()) continue;
    std::string code = text(concept_value, "code");
    if (code.empty()) continue;
    index.display[code] = text(concept_value, "display");
    if (parent) index.children[*parent].push_back(code);
    if (const json::Value* properties = json::find(concept_value, "property");
        properties && properties->IsArray()) {
      for (const json::Value& property : properties->GetArray()) {
        if (!property.IsObject()) continue;
        std::string name = text(property, "code");
        std::string value = propertyText(property);
        index.properties[code][name].push_back(value);
        // `parent` / `subsumedBy` properties express the hierarchy in flat code systems.
        if (name == "parent" || name == "subsumedBy") index.children[value].push_back(code);
        if (name == "child") index.children[code].push_back(value);
      }
    }
    if (const json::Value* nested = json::find(concept_value, "concept")) {
      indexConcepts(*nested, &code, index);
    }
  }
}

void descendants(const CodeSystemIndex& index, const std::string& code,
                 std::unordered_set<std::string>& out) {
  auto it = index.children.find(code);
  if (it == index.children.end()) return;
  for (const std::string& child : it->second) {
    if (out.insert(child).second) descendants(index, child, out);
  }
}

// Expansions in progress on this thread, to stop import cycles.
thread_local std::vector<std::string> in_progress;

}  // namespace

Terminology::Terminology(const definitions::Registry& registry) : registry_(registry) {}
Terminology::~Terminology() = default;

template <typename Slot>
Slot& Terminology::slotFor(SlotMap<Slot>& map, std::string_view lookup) const {
  if (const auto* current = map.current.load(std::memory_order_acquire)) {
    if (auto it = current->find(std::string(lookup)); it != current->end()) return *it->second;
  }
  std::lock_guard<std::mutex> lock(map.mutex);
  const auto* current = map.current.load(std::memory_order_acquire);
  if (current) {
    if (auto it = current->find(std::string(lookup)); it != current->end()) return *it->second;
  }
  auto next = current ? std::make_unique<std::unordered_map<std::string, Slot*>>(*current)
                      : std::make_unique<std::unordered_map<std::string, Slot*>>();
  auto slot = std::make_unique<Slot>();
  slot->key = std::string(lookup);
  Slot* raw = slot.get();
  map.slots.push_back(std::move(slot));
  next->emplace(raw->key, raw);
  map.current.store(next.get(), std::memory_order_release);
  map.versions.push_back(std::move(next));  // older versions stay alive for concurrent readers
  return *raw;
}

const CodeSystemIndex* Terminology::codeSystem(std::string_view system) const {
  CodeSystemSlot& slot = slotFor(code_systems_, system);
  std::call_once(slot.once, [&] { build(slot); });
  return slot.index.get();
}

void Terminology::build(CodeSystemSlot& slot) const {
  const json::Value* resource = registry_.codeSystem(slot.key);
  if (!resource) return;
  auto index = std::make_unique<CodeSystemIndex>();
  index->url = text(*resource, "url");
  index->version = text(*resource, "version");
  index->content = text(*resource, "content");
  if (const json::Value* sensitive = json::find(*resource, "caseSensitive"); sensitive && sensitive->IsBool()) {
    index->case_sensitive = sensitive->GetBool();
  }
  if (const json::Value* concepts = json::find(*resource, "concept")) indexConcepts(*concepts, nullptr, *index);
  slot.index = std::move(index);
}

const Expansion& Terminology::expand(std::string_view value_set) const {
  ExpansionSlot& slot = slotFor(expansions_, value_set);
  std::call_once(slot.once, [&] { build(slot); });
  return slot.expansion;
}

// The ordinalValue extensions of an include entry's concepts: code -> decimal text.
static void addOrdinals(const json::Value& include, std::unordered_map<std::string, std::string>& ordinals) {
  const json::Value* concepts = json::find(include, "concept");
  if (!concepts || !concepts->IsArray()) return;
  for (const json::Value& concept_value : concepts->GetArray()) {
    const json::Value* extensions = concept_value.IsObject() ? json::find(concept_value, "extension") : nullptr;
    if (!extensions || !extensions->IsArray()) continue;
    for (const json::Value& extension : extensions->GetArray()) {
      if (!extension.IsObject()) continue;
      const json::Value* ordinal = json::find(extension, "valueDecimal");
      if (text(extension, "url") == "http://hl7.org/fhir/StructureDefinition/ordinalValue" && ordinal &&
          json::isNumber(*ordinal)) {
        ordinals[text(concept_value, "code")] = json::numberText(*ordinal);
      }
    }
  }
}

void Terminology::build(ExpansionSlot& slot) const {
  Expansion& out = slot.expansion;
  out.url = std::string(definitions::canonicalUrl(slot.key));
  const json::Value* resource = registry_.valueSet(slot.key);
  if (!resource) return;
  out.found = true;
  out.name = text(*resource, "title");
  if (out.name.empty()) out.name = text(*resource, "name");
  out.version = text(*resource, "version");
  in_progress.push_back(out.url);

  auto addCode = [&](const std::string& system, const std::string& code) {
    out.codes.insert(key(system, code));
    out.bare_codes.insert(code);
  };

  // Adds the codes an include/exclude entry selects to `codes`/`bare`, or marks it open.
  auto select = [&](const json::Value& entry, std::unordered_set<std::string>& codes,
                    std::unordered_set<std::string>& bare, std::unordered_set<std::string>& open_systems,
                    bool& open) {
    std::string system = text(entry, "system");
    // valueSet imports.
    if (const json::Value* imports = json::find(entry, "valueSet"); imports && imports->IsArray()) {
      for (const json::Value& import : imports->GetArray()) {
        if (!json::isString(import)) continue;
        std::string url(json::stringView(import));
        if (std::find(in_progress.begin(), in_progress.end(), std::string(definitions::canonicalUrl(url))) !=
            in_progress.end()) {
          open = true;
          continue;
        }
        const Expansion& imported = expand(url);
        if (!imported.found || imported.open) open = true;
        codes.insert(imported.codes.begin(), imported.codes.end());
        bare.insert(imported.bare_codes.begin(), imported.bare_codes.end());
        open_systems.insert(imported.open_systems.begin(), imported.open_systems.end());
      }
    }
    if (system.empty()) return;
    const json::Value* concepts = json::find(entry, "concept");
    if (concepts && concepts->IsArray()) {
      for (const json::Value& concept_value : concepts->GetArray()) {
        std::string code = text(concept_value, "code");
        if (code.empty()) continue;
        codes.insert(key(system, code));
        bare.insert(code);
      }
      return;
    }
    const CodeSystemIndex* index = codeSystem(system);
    if (!index || !index->complete()) {
      open_systems.insert(system);
      return;
    }
    const json::Value* filters = json::find(entry, "filter");
    std::unordered_set<std::string> selected;
    bool first = true;
    if (filters && filters->IsArray()) {
      for (const json::Value& filter : filters->GetArray()) {
        std::string property = text(filter, "property");
        std::string op = text(filter, "op");
        std::string value = text(filter, "value");
        std::unordered_set<std::string> matched;
        if ((op == "is-a" || op == "descendent-of") && (property == "concept" || property == "code")) {
          if (op == "is-a" && index->has(value)) matched.insert(value);
          descendants(*index, value, matched);
        } else if (op == "is-not-a" && (property == "concept" || property == "code")) {
          std::unordered_set<std::string> excluded{value};
          descendants(*index, value, excluded);
          for (const auto& [code, display] : index->display) {
            if (!excluded.count(code)) matched.insert(code);
          }
        } else if (op == "=" || op == "in") {
          std::vector<std::string> wanted;
          if (op == "in") {
            size_t start = 0;
            while (start <= value.size()) {
              size_t comma = value.find(',', start);
              wanted.push_back(value.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
              if (comma == std::string::npos) break;
              start = comma + 1;
            }
          } else {
            wanted.push_back(value);
          }
          for (const auto& [code, display] : index->display) {
            if (property == "concept" || property == "code") {
              if (std::find(wanted.begin(), wanted.end(), code) != wanted.end()) matched.insert(code);
              continue;
            }
            auto props = index->properties.find(code);
            if (props == index->properties.end()) continue;
            auto values = props->second.find(property);
            if (values == props->second.end()) continue;
            for (const std::string& candidate : values->second) {
              if (std::find(wanted.begin(), wanted.end(), candidate) != wanted.end()) matched.insert(code);
            }
          }
        } else if (op == "regex" && (property == "concept" || property == "code")) {
          // Whole-code match on RE2 (linear time): value sets come from packages and senders.
          auto pattern = regex::Regex::cached(value, regex::Dialect::kFhir);
          if (!pattern.ok()) {
            open_systems.insert(system);
            return;
          }
          for (const auto& [code, display] : index->display) {
            if ((*pattern)->matchesWhole(code)) matched.insert(code);
          }
        } else {
          // A filter we do not evaluate: codes of this system cannot be judged.
          open_systems.insert(system);
          return;
        }
        if (first) {
          selected = std::move(matched);
          first = false;
        } else {
          std::unordered_set<std::string> both;
          for (const std::string& code : selected) {
            if (matched.count(code)) both.insert(code);
          }
          selected = std::move(both);
        }
      }
    } else {
      for (const auto& [code, display] : index->display) selected.insert(code);
    }
    for (const std::string& code : selected) {
      codes.insert(key(system, code));
      bare.insert(code);
    }
  };

  const json::Value* compose = json::find(*resource, "compose");
  if (compose && compose->IsObject()) {
    if (const json::Value* includes = json::find(*compose, "include"); includes && includes->IsArray()) {
      for (const json::Value& include : includes->GetArray()) {
        if (!include.IsObject()) continue;
        select(include, out.codes, out.bare_codes, out.open_systems, out.open);
        addOrdinals(include, out.ordinals);
      }
    }
    if (const json::Value* excludes = json::find(*compose, "exclude"); excludes && excludes->IsArray()) {
      for (const json::Value& exclude : excludes->GetArray()) {
        if (!exclude.IsObject()) continue;
        std::unordered_set<std::string> codes, bare, open_systems;
        bool open = false;
        select(exclude, codes, bare, open_systems, open);
        for (const std::string& code : codes) out.codes.erase(code);
      }
      out.bare_codes.clear();
      for (const std::string& entry : out.codes) out.bare_codes.insert(entry.substr(entry.find('|') + 1));
    }
  } else if (const json::Value* expansion = json::find(*resource, "expansion"); expansion && expansion->IsObject()) {
    std::vector<const json::Value*> stack;
    if (const json::Value* contains = json::find(*expansion, "contains")) stack.push_back(contains);
    while (!stack.empty()) {
      const json::Value* list = stack.back();
      stack.pop_back();
      if (!list->IsArray()) continue;
      for (const json::Value& item : list->GetArray()) {
        if (!item.IsObject()) continue;
        std::string code = text(item, "code");
        if (!code.empty()) addCode(text(item, "system"), code);
        if (const json::Value* nested = json::find(item, "contains")) stack.push_back(nested);
      }
    }
  } else {
    out.open = true;
  }
  in_progress.pop_back();
}

Membership Terminology::contains(const Expansion& expansion, std::string_view system,
                                 std::string_view code) const {
  if (!expansion.found) return Membership::kUnknown;
  if (system.empty()) {
    if (expansion.bare_codes.count(std::string(code))) return Membership::kMember;
    return expansion.open || !expansion.open_systems.empty() ? Membership::kUnknown
                                                             : Membership::kNotMember;
  }
  if (expansion.codes.count(key(system, code))) return Membership::kMember;
  if (expansion.open_systems.count(std::string(system))) return Membership::kUnknown;
  return expansion.open ? Membership::kUnknown : Membership::kNotMember;
}

}  // namespace fhir::terminology
