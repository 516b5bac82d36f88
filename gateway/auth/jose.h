// SPDX-License-Identifier: Apache-2.0
#pragma once

// JSON Web Signatures as SMART Backend Services uses them (RFC 7515, 7517, 7518, 7638):
// base64url, public keys from JWK sets, compact JWS signing and verification with RS384 and
// ES384 on OpenSSL 3 EVP. No cryptography is implemented here: OpenSSL signs and verifies;
// this file converts formats (JWK <-> EVP_PKEY, JWS raw R||S <-> DER ECDSA signatures).
//
// Thread-safety: a PublicKey/PrivateKey may be used by many threads at once (EVP_PKEY is
// reference-counted and read-only after creation; every operation makes its own context).

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "conformance/common/result.h"
#include "conformance/json/json.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace fhir::gateway::auth {

std::string base64UrlEncode(std::string_view bytes);
// Strict: the base64url alphabet only, no padding, no whitespace.
Result<std::string> base64UrlDecode(std::string_view text);

enum class Algorithm { kRS384, kES384 };
const char* algorithmName(Algorithm algorithm);

// A public key with its JWK `kid`. Shared so a client's key set can be copied cheaply.
struct PublicKey {
  std::string kid;
  Algorithm algorithm = Algorithm::kES384;  // RSA keys verify RS384, P-384 keys ES384
  std::shared_ptr<EVP_PKEY> key;
};

// One JWK (RFC 7517) holding an RSA (at least 2048 bits) or EC P-384 public key, with a
// `kid`. Refused: other key types or curves, private members (`d`), `use` other than `sig`,
// an `alg` that does not fit the key. `where` names the key in error messages.
Result<PublicKey> parsePublicJwk(const json::Value& jwk, const std::string& where);
// A JWK set {"keys": [...]}: every key parsed, kids unique.
Result<std::vector<PublicKey>> parseJwks(const json::Value& jwks, const std::string& where);

// A private key read from PEM (PKCS#8 or traditional), RSA or EC P-384.
struct PrivateKey {
  Algorithm algorithm = Algorithm::kES384;
  std::shared_ptr<EVP_PKEY> key;
};
Result<PrivateKey> readPrivateKeyPem(std::string_view pem);
Result<PrivateKey> readPrivateKeyFile(const std::string& path);
// A fresh EC P-384 key (OpenSSL's generator), written as PKCS#8 PEM by writePrivateKeyPem.
Result<PrivateKey> generateEs384Key();
Result<std::string> writePrivateKeyPem(const PrivateKey& key);

// The public JWK of a key ({"kty", "kid", "alg", "use", and n/e or crv/x/y}).
std::string publicJwkJson(const std::shared_ptr<EVP_PKEY>& key, Algorithm algorithm, const std::string& kid);
// RFC 7638 JWK thumbprint (SHA-256, base64url) of a key's public part: the default `kid`.
std::string jwkThumbprint(const std::shared_ptr<EVP_PKEY>& key, Algorithm algorithm);

// A compact JWS `header.payload.signature` signed with `key` (header gets alg, typ JWT, kid).
Result<std::string> signJws(const PrivateKey& key, const std::string& kid, std::string_view payload_json);

// A compact JWS split and decoded, not yet verified.
struct ParsedJws {
  std::string signing_input;  // "header.payload" as received
  json::Document header;
  json::Document payload;
  std::string signature;  // raw bytes
  std::string alg;        // header.alg as given
  std::string kid;        // header.kid, empty when absent
};
Result<ParsedJws> parseJws(std::string_view compact);

// True when `signature` over `signing_input` verifies with `key` under its algorithm.
bool verifySignature(const PublicKey& key, std::string_view signing_input, std::string_view signature);

}  // namespace fhir::gateway::auth
