// SPDX-License-Identifier: Apache-2.0
#include "gateway/server/capability.h"

#include "conformance/json/json.h"

namespace fhir::gateway {
namespace {

json::Value operationEntry(const FhirOperation& operation, json::Allocator& a) {
  json::Value entry(rapidjson::kObjectType);
  json::addString(entry, "name", operation.name, a);
  json::addString(entry, "definition", operation.definition, a);
  return entry;
}

json::Value parsed(const std::string& text, json::Allocator& a) {
  json::Value value;
  auto doc = json::parse(text);
  if (doc.ok()) value.CopyFrom(*doc, a);
  return value;
}

}  // namespace

std::string capabilityStatement(const FhirRoutes& routes, const CapabilityOptions& options) {
  json::Document doc;
  doc.SetObject();
  auto& a = doc.GetAllocator();
  json::addString(doc, "resourceType", "CapabilityStatement", a);
  json::addString(doc, "name", "FhirAlignmentGateway", a);
  json::addString(doc, "title", "FHIR alignment gateway", a);
  json::addString(doc, "status", "active", a);
  json::addString(doc, "date", "2026-12-03", a);
  json::addString(doc, "publisher", "FHIR alignment gateway", a);
  json::addString(doc, "description",
                  "What this gateway instance serves, generated from the routes it registers: reads, versions and "
                  "history of the stored resources, topic-based Subscriptions (R5 Backport IG for R4) and $validate.",
                  a);
  json::addString(doc, "kind", "instance", a);
  json::Value software(rapidjson::kObjectType);
  json::addString(software, "name", "fhir-gateway", a);
  json::addString(software, "version", "0.1.0", a);
  json::addMember(doc, "software", std::move(software), a);
  // cpb-14: an instance statement names its implementation.
  json::Value implementation(rapidjson::kObjectType);
  json::addString(implementation, "description", "FHIR alignment gateway", a);
  if (!options.base_url.empty()) json::addString(implementation, "url", options.base_url, a);
  json::addMember(doc, "implementation", std::move(implementation), a);
  json::addString(doc, "fhirVersion", "4.0.1", a);
  json::Value formats(rapidjson::kArrayType);
  formats.PushBack(json::makeString("application/fhir+json", a), a);
  formats.PushBack(json::makeString("json", a), a);
  json::addMember(doc, "format", std::move(formats), a);

  json::Value rest(rapidjson::kObjectType);
  json::addString(rest, "mode", "server", a);
  if (!options.token_url.empty()) {
    // SMART Backend Services (access.md): the token endpoint in the oauth-uris extension.
    json::addMember(rest, "security",
                    parsed(R"({"extension":[{"url":"http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris",)"
                           R"("extension":[{"url":"token","valueUri":)" + json::serialize(json::makeString(options.token_url, a)) +
                               R"(}]}],"service":[{"coding":[{"system":"http://terminology.hl7.org/CodeSystem/restful-security-service",)"
                               R"("code":"SMART-on-FHIR"}]}],"description":"SMART Backend Services: client_credentials with )"
                               R"(private_key_jwt (RS384, ES384); see /.well-known/smart-configuration"})",
                           a),
                    a);
  }
  json::Value resources(rapidjson::kArrayType);
  for (const FhirTypeRoutes& type : routes.types()) {
    json::Value resource(rapidjson::kObjectType);
    if (type.type == "Subscription" && !options.topic_canonicals.empty()) {
      // Backport IG: the topics a server supports, on the Subscription resource entry.
      json::Value extensions(rapidjson::kArrayType);
      for (const std::string& canonical : options.topic_canonicals) {
        json::Value extension(rapidjson::kObjectType);
        json::addString(extension, "url", kTopicCanonicalExtension, a);
        json::addString(extension, "valueCanonical", canonical, a);
        extensions.PushBack(extension, a);
      }
      json::addMember(resource, "extension", std::move(extensions), a);
    }
    json::addString(resource, "type", type.type, a);
    if (!type.documentation.empty()) json::addString(resource, "documentation", type.documentation, a);
    json::Value interactions(rapidjson::kArrayType);
    bool vread = false;
    bool update = false;
    for (const auto& [interaction, handler] : type.interactions) {
      json::Value entry(rapidjson::kObjectType);
      json::addString(entry, "code", std::string(interactionCode(interaction)), a);
      interactions.PushBack(entry, a);
      vread = vread || interaction == FhirInteraction::kVread;
      update = update || interaction == FhirInteraction::kUpdate;
    }
    json::addMember(resource, "interaction", std::move(interactions), a);
    json::addString(resource, "versioning", type.versioned ? "versioned" : "no-version", a);
    json::addMember(resource, "readHistory", json::Value(vread && type.handler(FhirInteraction::kHistoryInstance) != nullptr), a);
    json::addMember(resource, "updateCreate", json::Value(update), a);
    json::addMember(resource, "conditionalCreate", json::Value(type.conditional_create), a);
    json::addString(resource, "conditionalRead", type.conditional_read ? "full-support" : "not-supported", a);
    json::addMember(resource, "conditionalUpdate", json::Value(type.conditional_update), a);
    json::addString(resource, "conditionalDelete", "not-supported", a);
    if (!type.search_params.empty()) {
      json::Value params(rapidjson::kArrayType);
      for (const SearchParamInfo& param : type.search_params) {
        json::Value entry(rapidjson::kObjectType);
        json::addString(entry, "name", param.name, a);
        if (!param.definition.empty()) json::addString(entry, "definition", param.definition, a);
        json::addString(entry, "type", param.type, a);
        params.PushBack(entry, a);
      }
      json::addMember(resource, "searchParam", std::move(params), a);
    }
    json::Value operations(rapidjson::kArrayType);
    for (const FhirOperation& operation : type.operations) operations.PushBack(operationEntry(operation, a), a);
    for (const FhirOperation& operation : routes.anyTypeOperations()) operations.PushBack(operationEntry(operation, a), a);
    if (!operations.Empty()) json::addMember(resource, "operation", std::move(operations), a);
    resources.PushBack(resource, a);
  }
  json::addMember(rest, "resource", std::move(resources), a);
  json::Value system(rapidjson::kArrayType);
  for (const auto& [interaction, handler] : routes.systemInteractions()) {
    if (interaction == FhirInteraction::kCapabilities) continue;  // not a SystemRestfulInteraction code
    json::Value entry(rapidjson::kObjectType);
    json::addString(entry, "code", std::string(interactionCode(interaction)), a);
    system.PushBack(entry, a);
  }
  if (!system.Empty()) json::addMember(rest, "interaction", std::move(system), a);
  json::Value operations(rapidjson::kArrayType);
  for (const FhirOperation& operation : routes.systemOperations()) operations.PushBack(operationEntry(operation, a), a);
  if (!operations.Empty()) json::addMember(rest, "operation", std::move(operations), a);
  json::Value rests(rapidjson::kArrayType);
  rests.PushBack(rest, a);
  json::addMember(doc, "rest", std::move(rests), a);
  return json::serialize(doc);
}

std::vector<SearchParamInfo> searchParamsOf(const search::Registry& registry, const std::string& type) {
  std::vector<SearchParamInfo> params;
  for (const search::BoundParam* param : registry.forType(type)) {
    if (param->def == nullptr) continue;
    params.push_back({param->def->code, param->def->url, std::string(search::paramTypeCode(param->def->type))});
  }
  return params;
}

}  // namespace fhir::gateway
