// SPDX-License-Identifier: Apache-2.0
// SearchParameter definitions: loading, binding per resource type, compiling.
#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "conformance/search/search.h"
#include "gateway_paths.h"

namespace fhir::search {
namespace fs = std::filesystem;

std::optional<ParamType> paramTypeFromCode(std::string_view code) {
  static const std::pair<std::string_view, ParamType> kTypes[] = {
      {"number", ParamType::kNumber},     {"date", ParamType::kDate},
      {"string", ParamType::kString},     {"token", ParamType::kToken},
      {"reference", ParamType::kReference}, {"composite", ParamType::kComposite},
      {"quantity", ParamType::kQuantity}, {"uri", ParamType::kUri},
      {"special", ParamType::kSpecial}};
  for (const auto& [name, type] : kTypes) {
    if (name == code) return type;
  }
  return std::nullopt;
}

std::string_view paramTypeCode(ParamType type) {
  static const std::string_view kCodes[] = {"number",    "date",     "string", "token", "reference",
                                            "composite", "quantity", "uri",    "special"};
  return kCodes[static_cast<int>(type)];
}

namespace {

// Splits at `|` outside parentheses and string literals.
std::vector<std::string_view> splitUnion(std::string_view text) {
  std::vector<std::string_view> terms;
  int depth = 0;
  bool quoted = false;
  size_t start = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (quoted) {
      if (c == '\\') ++i;
      else if (c == '\'') quoted = false;
    } else if (c == '\'') {
      quoted = true;
    } else if (c == '(') {
      ++depth;
    } else if (c == ')') {
      --depth;
    } else if (c == '|' && depth == 0) {
      terms.push_back(text.substr(start, i - start));
      start = i + 1;
    }
  }
  terms.push_back(text.substr(start));
  return terms;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

// The first identifier of a term, skipping opening parentheses: "(Observation.value as
// Quantity)" -> "Observation".
std::string_view firstName(std::string_view term) {
  term = trim(term);
  while (!term.empty() && (term.front() == '(' || std::isspace(static_cast<unsigned char>(term.front())))) {
    term.remove_prefix(1);
  }
  size_t n = 0;
  while (n < term.size() && (std::isalnum(static_cast<unsigned char>(term[n])) || term[n] == '_')) ++n;
  return term.substr(0, n);
}

Result<std::string> readFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read " + path.string()};
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

}  // namespace

std::string termsForType(std::string_view expression, std::string_view type) {
  std::string out;
  for (std::string_view term : splitUnion(expression)) {
    std::string_view name = firstName(term);
    if (name == type || name == "Resource" || name == "DomainResource") {
      if (!out.empty()) out += " | ";
      out += trim(term);
    }
  }
  return out;
}

Result<std::shared_ptr<const Registry>> Registry::load(const std::vector<std::string>& package_dirs,
                                                        fhirpath::ModelPtr model) {
  auto registry = std::make_shared<Registry>();
  registry->model_ = model ? std::move(model) : fhirpath::Model::bundled();
  for (const std::string& dir : package_dirs) {
    std::error_code ec;
    std::vector<fs::path> files;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::string name = it->path().filename().string();
      if (name.rfind("SearchParameter-", 0) == 0 && name.size() > 5 &&
          name.compare(name.size() - 5, 5, ".json") == 0) {
        files.push_back(it->path());
      }
    }
    if (ec) return Error{"cannot list " + dir + ": " + ec.message()};
    std::sort(files.begin(), files.end());
    for (const fs::path& file : files) {
      auto text = readFile(file);
      if (!text.ok()) return text.error();
      auto doc = json::parse(*text);
      if (!doc.ok()) return Error{file.string() + ": " + doc.message()};
      const json::Value& sp = *doc;
      auto def = std::make_unique<ParamDef>();
      auto code = json::getString(sp, "code");
      auto type = json::getString(sp, "type");
      auto url = json::getString(sp, "url");
      if (!code || !type || !url) return Error{file.string() + ": SearchParameter without code, type or url"};
      auto ptype = paramTypeFromCode(*type);
      if (!ptype) return Error{file.string() + ": unknown search parameter type '" + std::string(*type) + "'"};
      def->code = *code;
      def->type = *ptype;
      def->url = *url;
      if (auto expression = json::getString(sp, "expression")) def->expression = *expression;
      for (const char* key : {"base", "target"}) {
        const json::Value* list = json::find(sp, key);
        if (list == nullptr || !list->IsArray()) continue;
        for (const json::Value& v : list->GetArray()) {
          if (!json::isString(v)) continue;
          (key[0] == 'b' ? def->bases : def->targets).emplace_back(json::stringView(v));
        }
      }
      for (const std::string& base : def->bases) {
        auto bound = std::make_unique<BoundParam>();
        bound->def = def.get();
        bound->type = base;
        bound->expression = termsForType(def->expression, base);
        if (!bound->expression.empty() && def->type != ParamType::kComposite &&
            def->type != ParamType::kSpecial) {
          fhirpath::CompileError detail;
          auto compiled = fhirpath::compile(bound->expression, &detail);
          if (!compiled.ok()) {
            return Error{file.string() + ": expression for " + base + " does not compile: " +
                         compiled.message()};
          }
          bound->compiled = std::move(*compiled);
        }
        registry->bound_[base][def->code] = std::move(bound);
      }
      registry->defs_.push_back(std::move(def));
    }
  }
  return std::shared_ptr<const Registry>(std::move(registry));
}

Result<std::shared_ptr<const Registry>> Registry::loadBundled() {
  const std::string root = GATEWAY_PROFILES_DIR;
  return load({root + "/r4-core/package", root + "/alignment/package"});
}

const BoundParam* Registry::find(std::string_view type, std::string_view code) const {
  for (std::string_view t : {type, std::string_view("DomainResource"), std::string_view("Resource")}) {
    auto it = bound_.find(t);
    if (it == bound_.end()) continue;
    auto p = it->second.find(code);
    if (p != it->second.end()) return p->second.get();
  }
  return nullptr;
}

std::vector<const BoundParam*> Registry::forType(std::string_view type) const {
  std::map<std::string_view, const BoundParam*> by_code;
  for (std::string_view t : {std::string_view("Resource"), std::string_view("DomainResource"), type}) {
    auto it = bound_.find(t);
    if (it == bound_.end()) continue;
    for (const auto& [code, bound] : it->second) by_code[code] = bound.get();
  }
  std::vector<const BoundParam*> out;
  for (const auto& [code, bound] : by_code) out.push_back(bound);
  return out;
}

std::vector<std::string> Registry::types() const {
  std::vector<std::string> out;
  for (const auto& [type, params] : bound_) {
    if (type != "Resource" && type != "DomainResource") out.push_back(type);
  }
  return out;
}

}  // namespace fhir::search
