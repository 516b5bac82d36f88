// SPDX-License-Identifier: Apache-2.0
// Model: element and type information read lazily from StructureDefinition-<Type>.json files.

#include <filesystem>
#include <fstream>
#include <sstream>

#include "conformance/fhirpath/internal.h"
#include "gateway_paths.h"

namespace fhir::fhirpath {
namespace {

constexpr std::string_view kPrefix = "StructureDefinition-";
constexpr std::string_view kSuffix = ".json";
constexpr std::string_view kSystemPrefix = "http://hl7.org/fhirpath/System.";
constexpr std::string_view kFhirTypeExtension =
    "http://hl7.org/fhir/StructureDefinition/structuredefinition-fhir-type";

std::string lastSegment(std::string_view url) {
  size_t slash = url.rfind('/');
  return std::string(slash == std::string_view::npos ? url : url.substr(slash + 1));
}

std::string typeCodeOf(const json::Value& type) {
  auto code = json::getString(type, "code");
  if (!code) return {};
  if (code->substr(0, kSystemPrefix.size()) == kSystemPrefix) {
    if (const json::Value* extensions = json::find(type, "extension");
        extensions != nullptr && extensions->IsArray()) {
      for (const auto& extension : extensions->GetArray()) {
        if (json::getString(extension, "url") == kFhirTypeExtension) {
          if (auto value = json::getString(extension, "valueUrl")) return std::string(*value);
        }
      }
    }
    return "System." + std::string(code->substr(kSystemPrefix.size()));
  }
  return std::string(*code);
}

// Parses one StructureDefinition into the slot's nodes. Failures leave the slot empty.
void loadSlot(const std::string& file, Model::Impl::Slot& slot) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return;
  std::stringstream buffer;
  buffer << in.rdbuf();
  json::Document doc;
  json::ParseError error;
  if (!json::parse(buffer.str(), doc, error) || !doc.IsObject()) return;
  auto type = json::getString(doc, "type");
  auto kind = json::getString(doc, "kind");
  const json::Value* snapshot = json::find(doc, "snapshot");
  if (!type || !kind || snapshot == nullptr) return;
  const json::Value* elements = json::find(*snapshot, "element");
  if (elements == nullptr || !elements->IsArray()) return;

  auto root = std::make_unique<TypeNode>();
  root->name = std::string(*type);
  root->resource = *kind == "resource";
  root->primitive = *kind == "primitive-type";
  if (auto base = json::getString(doc, "baseDefinition")) root->base = lastSegment(*base);

  std::map<std::string, TypeNode*, std::less<>> by_path;
  by_path[root->name] = root.get();
  std::vector<std::unique_ptr<TypeNode>> nodes;
  std::vector<std::pair<ChildDef*, std::string>> references;
  for (const auto& element : elements->GetArray()) {
    auto path = json::getString(element, "path");
    if (!path) continue;
    size_t dot = path->rfind('.');
    if (dot == std::string_view::npos) continue;
    auto parent = by_path.find(path->substr(0, dot));
    if (parent == by_path.end()) continue;
    std::string name(path->substr(dot + 1));
    ChildDef def;
    if (name.size() > 3 && name.compare(name.size() - 3, 3, "[x]") == 0) {
      name.resize(name.size() - 3);
      def.choice = true;
    }
    auto max = json::getString(element, "max");
    def.array = max && *max != "1" && *max != "0";
    if (const json::Value* types = json::find(element, "type"); types && types->IsArray()) {
      for (const auto& entry : types->GetArray()) {
        std::string code = typeCodeOf(entry);
        if (!code.empty()) def.types.push_back(std::move(code));
      }
    }
    bool inline_type = def.types.size() == 1 &&
                       (def.types[0] == "BackboneElement" || def.types[0] == "Element");
    def.resolved_types.resize(def.types.size(), nullptr);
    auto [added, inserted] = parent->second->addChild(name, std::move(def));
    if (!inserted) continue;
    if (inline_type) {
      auto node = std::make_unique<TypeNode>();
      node->name = added->types[0];
      node->base = "Element";
      added->inline_node = node.get();
      by_path[std::string(*path)] = node.get();
      nodes.push_back(std::move(node));
    }
    if (auto reference = json::getString(element, "contentReference")) {
      std::string target(*reference);
      if (!target.empty() && target[0] == '#') target.erase(0, 1);
      references.emplace_back(added, std::move(target));
    }
  }
  for (auto& [def, target] : references) {
    auto found = by_path.find(target);
    if (found != by_path.end()) {
      def->inline_node = found->second;
      def->types = {found->second->name};
    }
  }
  slot.root = root.get();
  slot.nodes.push_back(std::move(root));
  for (auto& node : nodes) slot.nodes.push_back(std::move(node));
}

}  // namespace

const TypeNode* Model::Impl::get(std::string_view name) const {
  auto it = slots.find(name);
  if (it == slots.end()) return nullptr;
  Slot& slot = *it->second;
  if (slot.loaded.load(std::memory_order_acquire)) return slot.root;
  std::call_once(slot.once, [&] {
    loadSlot(dir + "/" + std::string(kPrefix) + std::string(name) + std::string(kSuffix), slot);
  });
  slot.loaded.store(true, std::memory_order_release);
  return slot.root;
}

Model::Model(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Model::~Model() = default;

Result<std::shared_ptr<const Model>> Model::load(const std::string& package_dir) {
  static std::atomic<uint64_t> next_id{1};
  auto impl = std::make_unique<Impl>();
  impl->dir = package_dir;
  impl->id = next_id.fetch_add(1, std::memory_order_relaxed);
  std::error_code error;
  std::filesystem::directory_iterator it(package_dir, error);
  if (error) return Error{"cannot read FHIR package folder " + package_dir + ": " + error.message()};
  for (const auto& entry : it) {
    std::string file = entry.path().filename().string();
    if (file.size() <= kPrefix.size() + kSuffix.size() || file.rfind(kPrefix, 0) != 0 ||
        file.compare(file.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
      continue;
    }
    std::string name = file.substr(kPrefix.size(), file.size() - kPrefix.size() - kSuffix.size());
    impl->slots.emplace(std::move(name), std::make_unique<Impl::Slot>());
  }
  return std::shared_ptr<const Model>(new Model(std::move(impl)));
}

std::shared_ptr<const Model> Model::bundled() {
  static const std::shared_ptr<const Model> kModel = [] {
    auto loaded = load(std::string(GATEWAY_PROFILES_DIR) + "/r4-core/package");
    if (loaded.ok()) return std::move(loaded).value();
    return std::shared_ptr<const Model>(new Model(std::make_unique<Impl>()));
  }();
  return kModel;
}

const TypeNode* Model::type(std::string_view name) const { return impl_->get(name); }

bool Model::isResourceType(std::string_view name) const {
  const TypeNode* node = impl_->get(name);
  return node != nullptr && (node->resource || name == "Resource" || name == "DomainResource");
}

bool Model::isSubtypeOf(std::string_view type, std::string_view base) const {
  std::string current(type);
  for (int depth = 0; depth < 16 && !current.empty(); ++depth) {
    if (current == base) return true;
    const TypeNode* node = impl_->get(current);
    if (node == nullptr) return false;
    current = node->base;
  }
  return false;
}

std::vector<std::string> Model::childTypes(std::string_view type, std::string_view child) const {
  const TypeNode* node = impl_->get(type);
  if (node == nullptr) return {};
  const ChildDef* def = node->child(child);
  if (def == nullptr) return {};
  return def->types;
}

}  // namespace fhir::fhirpath
