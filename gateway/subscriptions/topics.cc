// SPDX-License-Identifier: Apache-2.0
#include "gateway/subscriptions/topics.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fhir::gateway {
namespace {

constexpr std::string_view kTopicExtension = "http://hl7.org/fhir/5.0/StructureDefinition/extension-SubscriptionTopic.";
constexpr std::string_view kStructurePrefix = "http://hl7.org/fhir/StructureDefinition/";

std::string_view extensionName(const json::Value& extension) {
  auto url = json::getString(extension, "url");
  if (!url || url->rfind(kTopicExtension, 0) != 0) return {};
  return url->substr(kTopicExtension.size());
}

// First value[x] of an extension as text.
std::string valueText(const json::Value& extension) {
  for (const auto& member : extension.GetObject()) {
    std::string_view name = json::stringView(member.name);
    if (name.rfind("value", 0) == 0 && json::isString(member.value)) return std::string(json::stringView(member.value));
  }
  return {};
}

}  // namespace

Result<std::shared_ptr<const TopicCatalog>> TopicCatalog::load(const std::string& package_dir) {
  auto catalog = std::make_shared<TopicCatalog>();
  catalog->model_ = fhirpath::Model::bundled();
  std::error_code error;
  if (!std::filesystem::is_directory(package_dir, error)) return std::shared_ptr<const TopicCatalog>(catalog);
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(package_dir, error)) {
    if (entry.path().extension() == ".json" && entry.path().filename().string().rfind("Basic-", 0) == 0) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  for (const auto& path : files) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream buffer;
    buffer << in.rdbuf();
    auto doc = json::parse(buffer.str());
    if (!doc.ok()) return Error{path.string() + ": " + doc.message()};
    const json::Value* code = json::find(*doc, "code");
    if (code == nullptr || json::serialize(*code).find("\"SubscriptionTopic\"") == std::string::npos) continue;
    Topic topic;
    topic.id = std::string(json::getString(*doc, "id").value_or(""));
    topic.basic_json = json::serialize(*doc);
    const json::Value* extensions = json::find(*doc, "extension");
    if (extensions == nullptr || !extensions->IsArray()) continue;
    for (const json::Value& extension : extensions->GetArray()) {
      std::string_view name = extensionName(extension);
      if (name == "url") topic.canonical = valueText(extension);
      if (name != "resourceTrigger" && name != "canFilterBy") continue;
      const json::Value* parts = json::find(extension, "extension");
      if (parts == nullptr || !parts->IsArray()) continue;
      TopicTrigger trigger;
      for (const json::Value& part : parts->GetArray()) {
        auto part_name = json::getString(part, "url").value_or("");
        std::string value = valueText(part);
        if (part_name == "resource" && value.rfind(kStructurePrefix, 0) == 0) {
          trigger.resource_type = value.substr(kStructurePrefix.size());
        } else if (part_name == "supportedInteraction") {
          trigger.on_create |= value == "create";
          trigger.on_update |= value == "update";
          trigger.on_delete |= value == "delete";
        } else if (part_name == "fhirPathCriteria") {
          auto compiled = fhirpath::compile(value);
          if (!compiled.ok()) return Error{path.string() + ": fhirPathCriteria '" + value + "': " + compiled.message()};
          trigger.criteria = *compiled;
        } else if (part_name == "filterParameter" &&
                   std::find(topic.filter_parameters.begin(), topic.filter_parameters.end(), value) ==
                       topic.filter_parameters.end()) {
          topic.filter_parameters.push_back(value);
        }
      }
      if (name == "resourceTrigger") topic.triggers.push_back(std::move(trigger));
    }
    if (!topic.canonical.empty()) catalog->topics_.push_back(std::move(topic));
  }
  return std::shared_ptr<const TopicCatalog>(catalog);
}

const Topic* TopicCatalog::find(std::string_view canonical) const {
  for (const Topic& topic : topics_) {
    if (topic.canonical == canonical) return &topic;
  }
  return nullptr;
}

bool TopicCatalog::fires(const Topic& topic, const ResourceChange& change) const {
  for (const TopicTrigger& trigger : topic.triggers) {
    if (trigger.resource_type != change.type) continue;
    const bool created = change.previous == nullptr;
    if (created ? !trigger.on_create : !trigger.on_update) continue;
    if (!trigger.criteria) return true;
    fhirpath::EvaluationContext context;
    context.model = model_;
    context.resource = change.current;
    context.variables.push_back({"current", {fhirpath::Item::node(change.current, change.type)}});
    fhirpath::Collection previous;
    if (change.previous != nullptr) previous.push_back(fhirpath::Item::node(change.previous, change.type));
    context.variables.push_back({"previous", std::move(previous)});
    auto result = fhirpath::evaluateBoolean(*trigger.criteria, fhirpath::Item::node(change.current, change.type), context);
    if (result.ok() && result->value_or(false)) return true;
  }
  return false;
}

}  // namespace fhir::gateway
