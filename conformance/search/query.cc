// SPDX-License-Identifier: Apache-2.0
// Query parsing: decoded (name, value) pairs to a typed, validated Query.
#include <algorithm>
#include <cctype>
#include <charconv>

#include "conformance/search/internal.h"
#include "conformance/search/search.h"

namespace fhir::search {
namespace {

Error notSupported(const std::string& what) { return Error{"not-supported: " + what}; }
Error invalid(const std::string& what) { return Error{"invalid: " + what}; }

// Splits at unescaped `sep`; `\,` `\|` `\$` `\\` become the character.
std::vector<std::string> splitEscaped(std::string_view text, char sep) {
  std::vector<std::string> out(1);
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\\' && i + 1 < text.size() &&
        (text[i + 1] == ',' || text[i + 1] == '|' || text[i + 1] == '$' || text[i + 1] == '\\')) {
      if (text[i + 1] == sep) {
        out.back() += text[++i];
      } else {
        out.back() += c;  // keep the escape for the next level of splitting
        out.back() += text[++i];
      }
    } else if (c == sep) {
      out.emplace_back();
    } else {
      out.back() += c;
    }
  }
  return out;
}

std::string unescape(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '\\' && i + 1 < text.size()) ++i;
    out += text[i];
  }
  return out;
}

bool isResourceTypeName(std::string_view s) {
  if (s.empty() || !std::isupper(static_cast<unsigned char>(s.front()))) return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

std::optional<Prefix> prefixOf(std::string_view s) {
  static const std::pair<std::string_view, Prefix> kPrefixes[] = {
      {"eq", Prefix::kEq}, {"ne", Prefix::kNe}, {"gt", Prefix::kGt}, {"lt", Prefix::kLt}, {"ge", Prefix::kGe},
      {"le", Prefix::kLe}, {"sa", Prefix::kSa}, {"eb", Prefix::kEb}, {"ap", Prefix::kAp}};
  if (s.size() < 3) return std::nullopt;
  for (const auto& [code, prefix] : kPrefixes) {
    if (s.substr(0, 2) == code) return prefix;
  }
  return std::nullopt;
}

bool allowedModifier(ParamType type, std::string_view modifier, bool chained_type) {
  if (modifier.empty() || modifier == "missing") return true;
  switch (type) {
    case ParamType::kToken: return modifier == "not" || modifier == "text" || modifier == "of-type";
    case ParamType::kString: return modifier == "exact" || modifier == "contains";
    case ParamType::kReference: return modifier == "identifier" || chained_type;
    default: return false;
  }
}

Result<QueryValue> parseValue(const BoundParam& param, const std::string& modifier, std::string_view text,
                              const QueryOptions& options) {
  QueryValue v;
  const std::string& name = param.def->code;
  ParamType type = param.def->type;
  if (type == ParamType::kDate || type == ParamType::kNumber || type == ParamType::kQuantity) {
    if (auto p = prefixOf(text); p && std::isalpha(static_cast<unsigned char>(text[0])) &&
                                 !std::isalpha(static_cast<unsigned char>(text[2]))) {
      v.prefix = *p;
      text.remove_prefix(2);
    }
  }
  v.raw = unescape(text);
  switch (type) {
    case ParamType::kDate: {
      auto range = parseDateRange(v.raw);
      if (!range) return invalid("'" + v.raw + "' is not a date for parameter '" + name + "'");
      v.date = *range;
      break;
    }
    case ParamType::kNumber:
    case ParamType::kQuantity: {
      std::vector<std::string> parts = splitEscaped(text, '|');
      std::string number = unescape(parts[0]);
      char* end = nullptr;
      v.number = std::strtod(number.c_str(), &end);
      if (number.empty() || end != number.c_str() + number.size()) {
        return invalid("'" + v.raw + "' is not a number for parameter '" + name + "'");
      }
      if (parts.size() == 3) {
        v.has_system = true;
        v.system = unescape(parts[1]);
        v.code = unescape(parts[2]);
      }
      break;
    }
    case ParamType::kString:
      v.normalized = normalizeString(v.raw);
      break;
    case ParamType::kUri:
      break;
    case ParamType::kToken: {
      if (modifier == "text") {
        v.normalized = normalizeString(v.raw);
        break;
      }
      std::vector<std::string> parts = splitEscaped(text, '|');
      if (modifier == "of-type") {
        if (parts.size() != 3) {
          return invalid(name + ":of-type '" + v.raw + "' is not system|code|value");
        }
        v.type_system = unescape(parts[0]);
        v.type_code = unescape(parts[1]);
        v.code = unescape(parts[2]);
        break;
      }
      if (parts.size() > 2) return invalid("token '" + v.raw + "' of parameter '" + name + "' has more than one '|'");
      if (parts.size() == 2) {
        v.has_system = true;
        v.system = unescape(parts[0]);
        v.code = unescape(parts[1]);
      } else {
        v.code = unescape(parts[0]);
      }
      break;
    }
    case ParamType::kReference: {
      if (modifier == "identifier") {
        std::vector<std::string> parts = splitEscaped(text, '|');
        if (parts.size() == 2) {
          v.has_system = true;
          v.system = unescape(parts[0]);
          v.code = unescape(parts[1]);
        } else {
          v.code = v.raw;
        }
        break;
      }
      std::string ref = v.raw;
      const std::string& base = options.base_url;
      if (!base.empty() && ref.size() > base.size() && ref.compare(0, base.size(), base) == 0 &&
          ref[base.size()] == '/') {
        ref = ref.substr(base.size() + 1);
      }
      if (ref.find("://") != std::string::npos || ref.rfind("urn:", 0) == 0) {
        v.ref_url = ref;
      } else if (ref.find('/') != std::string::npos) {
        ParsedReference p = parseReference(ref);
        if (p.type.empty()) return invalid("'" + v.raw + "' is not a reference for parameter '" + name + "'");
        v.ref_type = p.type;
        v.ref_id = p.id;
      } else {
        v.ref_id = ref;
      }
      if (isResourceTypeName(modifier)) {
        if (!v.ref_type.empty() && v.ref_type != modifier) {
          return invalid("'" + v.raw + "' is not a " + modifier + " reference for '" + name + ":" + modifier + "'");
        }
        v.ref_type = modifier;
      }
      break;
    }
    default:
      return notSupported("parameter '" + name + "' of type " + std::string(paramTypeCode(type)));
  }
  return v;
}

// The target type whose name is the parameter's code, ignoring case ("patient" -> "Patient").
std::string targetNamedBy(const ParamDef& def) {
  for (const std::string& target : def.targets) {
    if (target.size() != def.code.size()) continue;
    bool same = true;
    for (size_t i = 0; i < target.size() && same; ++i) {
      same = std::tolower(static_cast<unsigned char>(target[i])) == static_cast<unsigned char>(def.code[i]);
    }
    if (same) return target;
  }
  return {};
}

Result<int> parseCount(const std::string& text) {
  int value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value < 0) {
    return invalid("_count '" + text + "' is not a non-negative integer");
  }
  return value;
}

Status parseInclude(const Registry& registry, const std::string& name, const std::string& value,
                    std::vector<Include>& out) {
  Include include;
  include.iterate = name.ends_with(":iterate");
  if (value == "*") {
    include.source = include.param = "*";
    out.push_back(std::move(include));
    return {};
  }
  std::vector<std::string> parts = splitEscaped(value, ':');
  if (parts.size() < 2 || parts.size() > 3 || parts[0].empty() || parts[1].empty()) {
    return invalid(name + " '" + value + "' is not Type:parameter[:targetType]");
  }
  include.source = parts[0];
  include.param = parts[1];
  if (parts.size() == 3) include.target = parts[2];
  const fhirpath::Model& model = *registry.model();
  if (!model.isResourceType(include.source)) {
    return invalid(name + " '" + value + "': '" + include.source + "' is not a resource type");
  }
  if (!include.target.empty() && !model.isResourceType(include.target)) {
    return invalid(name + " '" + value + "': '" + include.target + "' is not a resource type");
  }
  if (include.param != "*") {
    const BoundParam* param = registry.find(include.source, include.param);
    if (param == nullptr || param->def->type != ParamType::kReference) {
      return notSupported(name + " '" + value + "': " + include.source + " has no reference parameter '" +
                          include.param + "'");
    }
    const std::vector<std::string>& targets = param->def->targets;
    if (!include.target.empty() && !targets.empty() &&
        std::find(targets.begin(), targets.end(), include.target) == targets.end()) {
      return invalid(name + " '" + value + "': " + include.source + ":" + include.param + " does not refer to " +
                     include.target);
    }
  }
  out.push_back(std::move(include));
  return {};
}

}  // namespace

Result<Query> parseQuery(const Registry& registry, std::string_view type,
                         const std::vector<std::pair<std::string, std::string>>& params,
                         const QueryOptions& options) {
  Query query;
  query.type = type;
  query.count = options.default_count;
  for (const auto& [full_name, value] : params) {
    std::string_view name = full_name;
    if (name == "_count") {
      auto count = parseCount(value);
      if (!count.ok()) return count.error();
      query.count = std::min(*count, options.max_count);
      continue;
    }
    if (name == "_sort") {
      for (const std::string& key : splitEscaped(value, ',')) {
        SortKey sort;
        sort.descending = !key.empty() && key[0] == '-';
        sort.param = sort.descending ? key.substr(1) : key;
        const BoundParam* param = registry.find(type, sort.param);
        if (param == nullptr || param->def->type != ParamType::kDate) {
          return notSupported("_sort by '" + sort.param + "' (only _lastUpdated and date parameters of " +
                              std::string(type) + ")");
        }
        query.sort.push_back(std::move(sort));
      }
      continue;
    }
    if (name == "_include" || name == "_include:iterate" || name == "_revinclude" || name == "_revinclude:iterate") {
      bool rev = name.rfind("_revinclude", 0) == 0;
      Status status = parseInclude(registry, std::string(name), value, rev ? query.revinclude : query.include);
      if (!status.ok()) return Error{status.message()};
      continue;
    }
    if (name == "_summary") {
      if (value != "count" && value != "true" && value != "false" && value != "text" && value != "data") {
        return invalid("_summary '" + value + "' is not count, true, false, text or data");
      }
      query.summary = value;
      continue;
    }
    if (name == "_total") {
      if (value != "none" && value != "estimate" && value != "accurate") {
        return invalid("_total '" + value + "' is not none, estimate or accurate");
      }
      query.total = value;
      continue;
    }
    if (name == "_elements") {
      for (std::string& e : splitEscaped(value, ',')) {
        if (!e.empty()) query.elements.push_back(std::move(e));
      }
      continue;
    }
    if (name == "_format" || name == "_pretty") continue;  // HTTP layer

    // A search parameter: name[:modifier][.chained]
    std::string_view head = name;
    std::string_view chained;
    if (size_t dot = name.find('.'); dot != std::string_view::npos) {
      head = name.substr(0, dot);
      chained = name.substr(dot + 1);
    }
    std::string_view modifier;
    if (size_t colon = head.find(':'); colon != std::string_view::npos) {
      modifier = head.substr(colon + 1);
      head = head.substr(0, colon);
    }
    const BoundParam* param = registry.find(type, head);
    if (param == nullptr || !param->compiled) {
      if (options.lenient) {
        query.ignored.emplace_back(full_name);
        continue;
      }
      return notSupported("unknown search parameter '" + std::string(head) + "' for " + std::string(type));
    }
    Clause clause;
    clause.name = head;
    clause.param = param;
    clause.modifier = modifier;
    ParamType ptype = param->def->type;
    bool type_modifier = ptype == ParamType::kReference && isResourceTypeName(modifier);
    if (!allowedModifier(ptype, modifier, type_modifier)) {
      return notSupported("modifier ':" + std::string(modifier) + "' on " + std::string(paramTypeCode(ptype)) +
                          " parameter '" + std::string(head) + "'");
    }
    if (modifier == "of-type" && head != "identifier") {
      return notSupported("modifier ':of-type' on '" + std::string(head) + "' (identifiers only)");
    }
    if (modifier == "missing") {
      if (!chained.empty()) return notSupported("':missing' on a chain");
      if (value != "true" && value != "false") {
        return invalid("'" + std::string(head) + ":missing' is '" + value + "', not true or false");
      }
      clause.missing = value == "true";
      query.clauses.push_back(std::move(clause));
      continue;
    }
    const BoundParam* value_param = param;
    std::string value_modifier(modifier);
    if (!chained.empty()) {
      if (ptype != ParamType::kReference) {
        return invalid("'" + std::string(head) + "' is not a reference parameter and cannot be chained");
      }
      if (chained.find('.') != std::string_view::npos) {
        return notSupported("chaining more than one level ('" + full_name + "')");
      }
      if (type_modifier) {
        clause.chain_type = modifier;
      } else if (param->def->targets.size() == 1) {
        clause.chain_type = param->def->targets[0];
      } else if (std::string target = targetNamedBy(*param->def); !target.empty()) {
        clause.chain_type = target;  // `patient` (clinical-patient, Patient|Group targets) -> Patient
      } else {
        return invalid("chained parameter '" + std::string(head) + "' has several target types; name one (" +
                       std::string(head) + ":Patient." + std::string(chained) + ")");
      }
      std::string_view chain_name = chained;
      value_modifier.clear();
      if (size_t colon = chained.find(':'); colon != std::string_view::npos) {
        chain_name = chained.substr(0, colon);
        value_modifier = chained.substr(colon + 1);
      }
      clause.chain = registry.find(clause.chain_type, chain_name);
      if (clause.chain == nullptr || !clause.chain->compiled) {
        if (options.lenient) {
          query.ignored.emplace_back(full_name);
          continue;
        }
        return notSupported("unknown search parameter '" + std::string(chain_name) + "' for " + clause.chain_type +
                            " in chain '" + full_name + "'");
      }
      ParamType ctype = clause.chain->def->type;
      if (value_modifier == "missing" || !allowedModifier(ctype, value_modifier, false)) {
        return notSupported("modifier ':" + value_modifier + "' in chain '" + full_name + "'");
      }
      value_param = clause.chain;
      clause.modifier = value_modifier;
    }
    for (const std::string& one : splitEscaped(value, ',')) {
      if (one.empty()) continue;
      auto parsed = parseValue(*value_param, value_modifier, one, options);
      if (!parsed.ok()) return parsed.error();
      clause.values.push_back(std::move(*parsed));
    }
    if (clause.values.empty()) {
      return invalid("parameter '" + full_name + "' has no value");
    }
    query.clauses.push_back(std::move(clause));
  }
  return query;
}

}  // namespace fhir::search
