// SPDX-License-Identifier: Apache-2.0
#include "gateway/auth/auth_config.h"

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>

namespace fhir::gateway::auth {
namespace {

using json::Value;

Error keyError(const std::string& where, const std::string& what) {
  return Error{"configuration key '" + where + "' " + what};
}

Status checkKeys(const Value& object, const std::string& where, std::initializer_list<std::string_view> allowed) {
  if (!object.IsObject()) return keyError(where, "must be a JSON object");
  for (const auto& member : object.GetObject()) {
    const std::string_view key = json::stringView(member.name);
    if (std::find(allowed.begin(), allowed.end(), key) == allowed.end()) {
      return Error{"unknown configuration key '" + where + "." + std::string(key) + "'"};
    }
  }
  return Status::Ok();
}

Status readString(const Value& object, const std::string& where, std::string_view key, std::string& out, bool required) {
  const Value* value = json::find(object, key);
  const std::string path = where + "." + std::string(key);
  if (value == nullptr) return required ? Status(Error{"missing required configuration key '" + path + "'"}) : Status::Ok();
  if (!json::isString(*value) || json::stringView(*value).empty()) return keyError(path, "must be a non-empty string");
  out = std::string(json::stringView(*value));
  return Status::Ok();
}

Status readStrings(const Value& object, const std::string& where, std::string_view key, std::vector<std::string>& out) {
  const Value* value = json::find(object, key);
  if (value == nullptr) return Status::Ok();
  const std::string path = where + "." + std::string(key);
  if (!value->IsArray()) return keyError(path, "must be an array of strings");
  for (const Value& item : value->GetArray()) {
    if (!json::isString(item) || json::stringView(item).empty()) return keyError(path, "must be an array of non-empty strings");
    out.emplace_back(json::stringView(item));
  }
  return Status::Ok();
}

Status readInteger(const Value& object, const std::string& where, std::string_view key, int64_t& out, int64_t minimum,
                   int64_t maximum) {
  const Value* value = json::find(object, key);
  if (value == nullptr) return Status::Ok();
  const std::string path = where + "." + std::string(key);
  auto number = json::numberAsInt64(*value);
  if (!number || *number < minimum || *number > maximum) {
    return keyError(path, "must be an integer from " + std::to_string(minimum) + " to " + std::to_string(maximum));
  }
  out = *number;
  return Status::Ok();
}

#define AUTH_RETURN_IF_ERROR(expr)                       \
  do {                                                   \
    Status status_ = (expr);                             \
    if (!status_.ok()) return Error{status_.message()};  \
  } while (false)

Result<ClientKind> kindOf(std::string_view text, const std::string& where) {
  if (text == "ehr") return ClientKind::kEhr;
  if (text == "payer") return ClientKind::kPayer;
  if (text == "hie") return ClientKind::kHie;
  if (text == "practice") return ClientKind::kPractice;
  if (text == "admin") return ClientKind::kAdmin;
  return keyError(where, "must be one of ehr, payer, hie, practice, admin");
}

Result<std::vector<PublicKey>> readKeys(const Value& client, const std::string& where) {
  const Value* inline_jwks = json::find(client, "jwks");
  const Value* file = json::find(client, "jwksFile");
  if ((inline_jwks == nullptr) == (file == nullptr)) {
    return Error{"configuration key '" + where + "' needs exactly one of 'jwksFile' and 'jwks'"};
  }
  if (inline_jwks != nullptr) return parseJwks(*inline_jwks, "configuration key '" + where + ".jwks'");
  std::string path;
  AUTH_RETURN_IF_ERROR(readString(client, where, "jwksFile", path, true));
  std::ifstream in(path, std::ios::binary);
  if (!in) return keyError(where + ".jwksFile", "cannot read file '" + path + "'");
  std::ostringstream text;
  text << in.rdbuf();
  json::Document doc;
  json::ParseError error;
  if (!json::parse(text.str(), doc, error)) {
    return keyError(where + ".jwksFile", "'" + path + "' is not valid JSON: " + error.describe());
  }
  return parseJwks(doc, "configuration key '" + where + ".jwksFile' (" + path + ")");
}

Result<AuthClient> parseClient(const Value& value, const std::string& where, const std::vector<std::string>& payer_ids) {
  AUTH_RETURN_IF_ERROR(checkKeys(value, where,
                                 {"id", "kind", "jwksFile", "jwks", "sources", "payerId", "subscriptionEndpoints",
                                  "practices", "practiceNpi", "certificateSubject"}));
  AuthClient client;
  AUTH_RETURN_IF_ERROR(readString(value, where, "id", client.id, true));
  std::string kind;
  AUTH_RETURN_IF_ERROR(readString(value, where, "kind", kind, true));
  auto parsed_kind = kindOf(kind, where + ".kind");
  if (!parsed_kind.ok()) return parsed_kind.error();
  client.kind = *parsed_kind;
  auto keys = readKeys(value, where);
  if (!keys.ok()) return keys.error();
  client.keys = std::move(*keys);
  AUTH_RETURN_IF_ERROR(readString(value, where, "certificateSubject", client.certificate_subject, false));

  // Keys that belong to one kind only.
  const std::pair<const char*, ClientKind> owners[] = {{"sources", ClientKind::kEhr},
                                                       {"payerId", ClientKind::kPayer},
                                                       {"subscriptionEndpoints", ClientKind::kHie},
                                                       {"practices", ClientKind::kHie},
                                                       {"practiceNpi", ClientKind::kPractice}};
  for (const auto& [key, owner] : owners) {
    if (json::find(value, key) != nullptr && client.kind != owner) {
      return keyError(where + "." + key, std::string("is only for clients of kind ") + clientKindName(owner));
    }
  }
  switch (client.kind) {
    case ClientKind::kEhr:
      AUTH_RETURN_IF_ERROR(readStrings(value, where, "sources", client.sources));
      if (client.sources.empty()) return Error{"configuration key '" + where + ".sources' must name at least one source"};
      break;
    case ClientKind::kPayer:
      AUTH_RETURN_IF_ERROR(readString(value, where, "payerId", client.payer_id, true));
      if (std::find(payer_ids.begin(), payer_ids.end(), client.payer_id) == payer_ids.end()) {
        return keyError(where + ".payerId", "names '" + client.payer_id + "', which is not a configured payers[].id");
      }
      break;
    case ClientKind::kHie: {
      AUTH_RETURN_IF_ERROR(readStrings(value, where, "subscriptionEndpoints", client.subscription_endpoints));
      for (const std::string& endpoint : client.subscription_endpoints) {
        if (endpoint.rfind("https://", 0) != 0 && endpoint.rfind("http://", 0) != 0) {
          return keyError(where + ".subscriptionEndpoints", "must hold http:// or https:// URLs");
        }
      }
      const Value* practices = json::find(value, "practices");
      if (practices != nullptr && json::isString(*practices)) {
        if (json::stringView(*practices) != "all") return keyError(where + ".practices", "must be \"all\" or a list of practice NPIs");
        client.all_practices = true;
      } else {
        AUTH_RETURN_IF_ERROR(readStrings(value, where, "practices", client.practices));
      }
      break;
    }
    case ClientKind::kPractice:
      AUTH_RETURN_IF_ERROR(readString(value, where, "practiceNpi", client.practice_npi, true));
      break;
    case ClientKind::kAdmin:
      break;
  }
  return client;
}

}  // namespace

const PublicKey* AuthClient::findKey(std::string_view kid) const {
  for (const PublicKey& key : keys) {
    if (key.kid == kid) return &key;
  }
  return nullptr;
}

const AuthClient* AuthConfig::findClient(std::string_view id) const {
  for (const AuthClient& client : clients) {
    if (client.id == id) return &client;
  }
  return nullptr;
}

Result<AuthConfig> parseAuthConfig(const json::Value& auth, const std::vector<std::string>& payer_ids) {
  const std::string where = "auth";
  AUTH_RETURN_IF_ERROR(checkKeys(auth, where,
                                 {"signingKeyFile", "createSigningKey", "tokenLifetimeSeconds",
                                  "maxSubscriptionsPerClient", "clients"}));
  AuthConfig config;
  AUTH_RETURN_IF_ERROR(readString(auth, where, "signingKeyFile", config.signing_key_file, false));
  if (const Value* create = json::find(auth, "createSigningKey")) {
    if (!create->IsBool()) return keyError("auth.createSigningKey", "must be true or false");
    config.create_signing_key = create->GetBool();
  }
  AUTH_RETURN_IF_ERROR(readInteger(auth, where, "tokenLifetimeSeconds", config.token_lifetime_seconds, 1, 86400));
  AUTH_RETURN_IF_ERROR(readInteger(auth, where, "maxSubscriptionsPerClient", config.max_subscriptions_per_client, 0, 1000000));
  const Value* clients = json::find(auth, "clients");
  if (clients == nullptr) return Error{"missing required configuration key 'auth.clients'"};
  if (!clients->IsArray()) return keyError("auth.clients", "must be an array");
  std::set<std::string> ids;
  for (rapidjson::SizeType index = 0; index < clients->Size(); ++index) {
    auto client = parseClient((*clients)[index], "auth.clients[" + std::to_string(index) + "]", payer_ids);
    if (!client.ok()) return client.error();
    if (!ids.insert(client->id).second) return Error{"duplicate client id '" + client->id + "' in configuration key 'auth.clients'"};
    config.clients.push_back(std::move(*client));
  }
  return config;
}

}  // namespace fhir::gateway::auth
