// SPDX-License-Identifier: Apache-2.0
// `fhir-gateway token` (contracts/cli.md): signs a SMART Backend Services client assertion and
// exchanges it for an access token at BASE/auth/token.
#include <curl/curl.h>
#include <openssl/rand.h>

#include <chrono>
#include <iostream>
#include <optional>

#include "conformance/json/json.h"
#include "gateway/auth/jose.h"
#include "gateway/cli/commands.h"

namespace fhir::gateway::cli {
namespace {

constexpr const char* kTokenHelp =
    "usage: fhir-gateway token --url BASE --client ID --key FILE [--scope S] [--kid KID] [--cacert FILE]\n"
    "\n"
    "Sign a client assertion (SMART Backend Services, private_key_jwt) with the private key FILE\n"
    "and exchange it at BASE/auth/token; print the access token alone on stdout, e.g.\n"
    "  curl -H \"Authorization: Bearer $(fhir-gateway token --url http://127.0.0.1:8080 ...)\" ...\n"
    "\n"
    "  --url BASE    the gateway's base URL (its publicBaseUrl); the assertion's aud is BASE/auth/token\n"
    "  --client ID   the client id registered in the gateway's auth.clients\n"
    "  --key FILE    PEM private key: RSA (signs RS384) or EC P-384 (signs ES384)\n"
    "  --scope S     space-separated scopes to ask for (e.g. 'system/*.rs ingest/econsult');\n"
    "                default: every scope the client's kind allows\n"
    "  --kid KID     the key's kid in the client's JWK set; default: the key's RFC 7638 JWK\n"
    "                thumbprint (SHA-256)\n"
    "  --cacert FILE PEM certificates to verify an https BASE with, instead of the system's CA\n"
    "                bundle (a gateway whose certificate a private CA or the gateway itself signed)\n"
    "\n"
    "Exit codes: 0 token printed; 1 the gateway refused (its error on stderr); 2 usage or\n"
    "environment error (bad flag, unreadable key, gateway unreachable).\n";

size_t collect(char* data, size_t size, size_t count, void* out) {
  static_cast<std::string*>(out)->append(data, size * count);
  return size * count;
}

std::string escapeForm(CURL* curl, const std::string& text) {
  char* escaped = curl_easy_escape(curl, text.data(), static_cast<int>(text.size()));
  std::string out = escaped != nullptr ? escaped : "";
  curl_free(escaped);
  return out;
}

std::string jsonString(const std::string& text) {
  std::string out = "\"";
  json::appendEscaped(text, out);
  return out + "\"";
}

}  // namespace

int runToken(const Args& args, Io& io) {
  std::optional<std::string> url, client, key_file, scope, kid, ca_file;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      io.out << kTokenHelp;
      return 0;
    }
    std::optional<std::string>* target = arg == "--url"      ? &url
                                         : arg == "--client" ? &client
                                         : arg == "--key"    ? &key_file
                                         : arg == "--scope"  ? &scope
                                         : arg == "--kid"    ? &kid
                                         : arg == "--cacert" ? &ca_file
                                                             : nullptr;
    if (target == nullptr) {
      io.err << "fhir-gateway token: unknown argument '" << arg << "' (see --help)\n";
      return 2;
    }
    if (i + 1 >= args.size()) {
      io.err << "fhir-gateway token: " << arg << " needs a value\n";
      return 2;
    }
    *target = args[++i];
  }
  if (!url || !client || !key_file) {
    io.err << "fhir-gateway token: --url, --client and --key are required (see --help)\n";
    return 2;
  }
  auto key = auth::readPrivateKeyFile(*key_file);
  if (!key.ok()) {
    io.err << "fhir-gateway token: " << key.message() << "\n";
    return 2;
  }
  std::string base = *url;
  while (!base.empty() && base.back() == '/') base.pop_back();
  const std::string token_url = base + "/auth/token";
  unsigned char random[18];
  if (RAND_bytes(random, sizeof(random)) != 1) {
    io.err << "fhir-gateway token: no random bytes for the jti\n";
    return 2;
  }
  const int64_t now = std::chrono::duration_cast<std::chrono::seconds>(
                          std::chrono::system_clock::now().time_since_epoch()).count();
  // Four minutes: within the five the gateway allows, with room for clock skew.
  const std::string claims = "{\"iss\":" + jsonString(*client) + ",\"sub\":" + jsonString(*client) + ",\"aud\":" +
                             jsonString(token_url) + ",\"exp\":" + std::to_string(now + 240) + ",\"jti\":" +
                             jsonString(auth::base64UrlEncode(std::string_view(reinterpret_cast<char*>(random), sizeof(random)))) + "}";
  auto assertion = auth::signJws(*key, kid ? *kid : auth::jwkThumbprint(key->key, key->algorithm), claims);
  if (!assertion.ok()) {
    io.err << "fhir-gateway token: " << assertion.message() << "\n";
    return 2;
  }

  curl_global_init(CURL_GLOBAL_DEFAULT);
  CURL* curl = curl_easy_init();
  if (curl == nullptr) {
    io.err << "fhir-gateway token: cannot start libcurl\n";
    return 2;
  }
  std::string form = "grant_type=client_credentials&client_assertion_type=" +
                     escapeForm(curl, "urn:ietf:params:oauth:client-assertion-type:jwt-bearer") +
                     "&client_assertion=" + escapeForm(curl, *assertion);
  if (scope) form += "&scope=" + escapeForm(curl, *scope);
  std::string answer;
  curl_easy_setopt(curl, CURLOPT_URL, token_url.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDS, form.c_str());
  curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(form.size()));
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &collect);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &answer);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
  if (ca_file) curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file->c_str());
  struct curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/x-www-form-urlencoded");
  headers = curl_slist_append(headers, "Accept: application/json");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  const CURLcode code = curl_easy_perform(curl);
  long status = 0;
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
  curl_slist_free_all(headers);
  curl_easy_cleanup(curl);
  curl_global_cleanup();
  if (code != CURLE_OK) {
    io.err << "fhir-gateway token: cannot reach " << token_url << ": " << curl_easy_strerror(code) << "\n";
    return 2;
  }
  json::Document doc;
  json::ParseError error;
  const bool parsed = json::parse(answer, doc, error) && doc.IsObject();
  if (status == 200 && parsed) {
    if (auto token = json::getString(doc, "access_token")) {
      io.out << *token << "\n";
      return 0;
    }
  }
  auto error_code = parsed ? json::getString(doc, "error") : std::nullopt;
  auto description = parsed ? json::getString(doc, "error_description") : std::nullopt;
  io.err << "fhir-gateway token: " << token_url << " answered " << status;
  if (error_code) io.err << " " << *error_code;
  if (description) io.err << ": " << *description;
  io.err << "\n";
  return 1;
}

}  // namespace fhir::gateway::cli
