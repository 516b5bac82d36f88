// SPDX-License-Identifier: Apache-2.0
#include "gateway/auth/jose.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include <array>
#include <fstream>
#include <sstream>

namespace fhir::gateway::auth {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
constexpr size_t kEs384Half = 48;  // bytes of R and of S in a JWS ES384 signature

struct BnFree {
  void operator()(BIGNUM* bn) const { BN_free(bn); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

std::shared_ptr<EVP_PKEY> own(EVP_PKEY* key) { return std::shared_ptr<EVP_PKEY>(key, EVP_PKEY_free); }

std::string bnBytes(const BIGNUM* bn, int pad_to) {
  int size = pad_to > 0 ? pad_to : BN_num_bytes(bn);
  std::string out(static_cast<size_t>(size), '\0');
  if (pad_to > 0) BN_bn2binpad(bn, reinterpret_cast<unsigned char*>(out.data()), size);
  else BN_bn2bin(bn, reinterpret_cast<unsigned char*>(out.data()));
  return out;
}

BnPtr bnParam(EVP_PKEY* key, const char* name) {
  BIGNUM* bn = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &bn) != 1) return nullptr;
  return BnPtr(bn);
}

// RSA (RS384) or EC on P-384 (ES384); anything else is refused.
Result<Algorithm> algorithmOf(EVP_PKEY* key) {
  if (EVP_PKEY_is_a(key, "RSA")) {
    if (EVP_PKEY_get_bits(key) < 2048) return Error{"RSA keys must have at least 2048 bits"};
    return Algorithm::kRS384;
  }
  if (EVP_PKEY_is_a(key, "EC")) {
    char group[64] = {0};
    size_t length = 0;
    if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), &length) != 1 ||
        std::string_view(group) != "secp384r1") {
      return Error{"EC keys must be on curve P-384 (ES384)"};
    }
    return Algorithm::kES384;
  }
  return Error{"only RSA (RS384) and EC P-384 (ES384) keys are supported"};
}

Result<std::shared_ptr<EVP_PKEY>> fromParams(const char* type, OSSL_PARAM_BLD* builder) {
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(builder);
  EVP_PKEY_CTX* context = EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr);
  EVP_PKEY* key = nullptr;
  const bool made = params != nullptr && context != nullptr && EVP_PKEY_fromdata_init(context) == 1 &&
                    EVP_PKEY_fromdata(context, &key, EVP_PKEY_PUBLIC_KEY, params) == 1;
  EVP_PKEY_CTX_free(context);
  OSSL_PARAM_free(params);
  if (!made) return Error{std::string("not a valid ") + type + " public key"};
  return own(key);
}

Result<std::string> member(const json::Value& jwk, std::string_view name, const std::string& where) {
  auto text = json::getString(jwk, name);
  if (!text || text->empty()) return Error{where + ": missing '" + std::string(name) + "'"};
  auto bytes = base64UrlDecode(*text);
  if (!bytes.ok()) return Error{where + "." + std::string(name) + ": " + bytes.message()};
  return bytes;
}

std::string derFromRaw(std::string_view raw) {
  ECDSA_SIG* signature = ECDSA_SIG_new();
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), kEs384Half, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + kEs384Half, kEs384Half, nullptr);
  std::string der;
  if (signature != nullptr && r != nullptr && s != nullptr && ECDSA_SIG_set0(signature, r, s) == 1) {
    r = s = nullptr;  // owned by the signature now
    unsigned char* out = nullptr;
    int length = i2d_ECDSA_SIG(signature, &out);
    if (length > 0) der.assign(reinterpret_cast<char*>(out), static_cast<size_t>(length));
    OPENSSL_free(out);
  }
  BN_free(r);
  BN_free(s);
  ECDSA_SIG_free(signature);
  return der;
}

std::string rawFromDer(std::string_view der) {
  const auto* data = reinterpret_cast<const unsigned char*>(der.data());
  ECDSA_SIG* signature = d2i_ECDSA_SIG(nullptr, &data, static_cast<long>(der.size()));
  if (signature == nullptr) return {};
  std::string raw = bnBytes(ECDSA_SIG_get0_r(signature), kEs384Half) + bnBytes(ECDSA_SIG_get0_s(signature), kEs384Half);
  ECDSA_SIG_free(signature);
  return raw;
}

Result<std::string> sha256(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) return Error{"SHA-256 failed"};
  return std::string(reinterpret_cast<char*>(digest), length);
}

Result<json::Document> parseSegment(std::string_view segment, const char* what) {
  auto bytes = base64UrlDecode(segment);
  if (!bytes.ok()) return Error{std::string("the JWT ") + what + " is not base64url"};
  json::Document doc;
  json::ParseError error;
  if (!json::parse(*bytes, doc, error) || !doc.IsObject()) return Error{std::string("the JWT ") + what + " is not a JSON object"};
  return doc;
}

}  // namespace

std::string base64UrlEncode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t index = 0;
  for (; index + 2 < bytes.size(); index += 3) {
    const uint32_t group = (static_cast<uint8_t>(bytes[index]) << 16) | (static_cast<uint8_t>(bytes[index + 1]) << 8) |
                           static_cast<uint8_t>(bytes[index + 2]);
    for (int shift : {18, 12, 6, 0}) out.push_back(kAlphabet[(group >> shift) & 63]);
  }
  const size_t rest = bytes.size() - index;
  if (rest > 0) {
    uint32_t group = static_cast<uint8_t>(bytes[index]) << 16;
    if (rest == 2) group |= static_cast<uint8_t>(bytes[index + 1]) << 8;
    out.push_back(kAlphabet[(group >> 18) & 63]);
    out.push_back(kAlphabet[(group >> 12) & 63]);
    if (rest == 2) out.push_back(kAlphabet[(group >> 6) & 63]);
  }
  return out;
}

Result<std::string> base64UrlDecode(std::string_view text) {
  static const std::array<int8_t, 256> kValues = [] {
    std::array<int8_t, 256> values{};
    values.fill(-1);
    for (int index = 0; index < 64; ++index) values[static_cast<uint8_t>(kAlphabet[index])] = static_cast<int8_t>(index);
    return values;
  }();
  if (text.size() % 4 == 1) return Error{"invalid base64url length"};
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t group = 0;
  int bits = 0;
  for (char c : text) {
    const int value = kValues[static_cast<uint8_t>(c)];
    if (value < 0) return Error{"invalid base64url character"};
    group = (group << 6) | static_cast<uint32_t>(value);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((group >> bits) & 0xff));
    }
  }
  if ((group & ((1u << bits) - 1)) != 0) return Error{"invalid base64url padding bits"};
  return out;
}

const char* algorithmName(Algorithm algorithm) { return algorithm == Algorithm::kRS384 ? "RS384" : "ES384"; }

Result<PublicKey> parsePublicJwk(const json::Value& jwk, const std::string& where) {
  if (!jwk.IsObject()) return Error{where + " must be a JSON object"};
  PublicKey result;
  auto kid = json::getString(jwk, "kid");
  if (!kid || kid->empty()) return Error{where + ": missing 'kid' (keys are chosen by kid)"};
  result.kid = std::string(*kid);
  if (json::find(jwk, "d") != nullptr) return Error{where + ": holds a private key ('d'); register the public key only"};
  if (auto use = json::getString(jwk, "use"); use && *use != "sig") return Error{where + ": 'use' must be 'sig'"};
  auto kty = json::getString(jwk, "kty");
  OSSL_PARAM_BLD* builder = OSSL_PARAM_BLD_new();
  Result<std::shared_ptr<EVP_PKEY>> key = Error{where + ": 'kty' must be 'RSA' or 'EC'"};
  if (kty && *kty == "RSA") {
    auto n = member(jwk, "n", where);
    auto e = member(jwk, "e", where);
    if (!n.ok() || !e.ok()) {
      OSSL_PARAM_BLD_free(builder);
      return Error{!n.ok() ? n.message() : e.message()};
    }
    BnPtr modulus(BN_bin2bn(reinterpret_cast<const unsigned char*>(n->data()), static_cast<int>(n->size()), nullptr));
    BnPtr exponent(BN_bin2bn(reinterpret_cast<const unsigned char*>(e->data()), static_cast<int>(e->size()), nullptr));
    OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_N, modulus.get());
    OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_E, exponent.get());
    key = fromParams("RSA", builder);
  } else if (kty && *kty == "EC") {
    if (json::getString(jwk, "crv") != std::optional<std::string_view>("P-384")) {
      OSSL_PARAM_BLD_free(builder);
      return Error{where + ": 'crv' must be 'P-384' (ES384)"};
    }
    auto x = member(jwk, "x", where);
    auto y = member(jwk, "y", where);
    if (!x.ok() || !y.ok()) {
      OSSL_PARAM_BLD_free(builder);
      return Error{!x.ok() ? x.message() : y.message()};
    }
    if (x->size() != kEs384Half || y->size() != kEs384Half) {
      OSSL_PARAM_BLD_free(builder);
      return Error{where + ": 'x' and 'y' must be 48 bytes each"};
    }
    const std::string point = "\x04" + *x + *y;  // SEC1 uncompressed point
    OSSL_PARAM_BLD_push_utf8_string(builder, OSSL_PKEY_PARAM_GROUP_NAME, "secp384r1", 0);
    OSSL_PARAM_BLD_push_octet_string(builder, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
    key = fromParams("EC", builder);
  }
  OSSL_PARAM_BLD_free(builder);
  if (!key.ok()) return Error{key.message().rfind(where, 0) == 0 ? key.message() : where + ": " + key.message()};
  auto algorithm = algorithmOf(key->get());
  if (!algorithm.ok()) return Error{where + ": " + algorithm.message()};
  if (auto alg = json::getString(jwk, "alg"); alg && *alg != algorithmName(*algorithm)) {
    return Error{where + ": 'alg' " + std::string(*alg) + " does not fit the key (" + algorithmName(*algorithm) + ")"};
  }
  result.algorithm = *algorithm;
  result.key = std::move(*key);
  return result;
}

Result<std::vector<PublicKey>> parseJwks(const json::Value& jwks, const std::string& where) {
  const json::Value* keys = jwks.IsObject() ? json::find(jwks, "keys") : nullptr;
  if (keys == nullptr || !keys->IsArray() || keys->Empty()) return Error{where + " must be a JWK set {\"keys\": [...]} with at least one key"};
  std::vector<PublicKey> result;
  for (rapidjson::SizeType index = 0; index < keys->Size(); ++index) {
    auto key = parsePublicJwk((*keys)[index], where + ".keys[" + std::to_string(index) + "]");
    if (!key.ok()) return key.error();
    for (const PublicKey& other : result) {
      if (other.kid == key->kid) return Error{where + ": duplicate kid '" + key->kid + "'"};
    }
    result.push_back(std::move(*key));
  }
  return result;
}

Result<PrivateKey> readPrivateKeyPem(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* key = bio != nullptr ? PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr) : nullptr;
  BIO_free(bio);
  if (key == nullptr) return Error{"not a PEM private key"};
  PrivateKey result{Algorithm::kES384, own(key)};
  auto algorithm = algorithmOf(key);
  if (!algorithm.ok()) return algorithm.error();
  result.algorithm = *algorithm;
  return result;
}

Result<PrivateKey> readPrivateKeyFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Error{"cannot read key file " + path};
  std::ostringstream text;
  text << in.rdbuf();
  auto key = readPrivateKeyPem(text.str());
  if (!key.ok()) return Error{path + ": " + key.message()};
  return key;
}

Result<PrivateKey> generateEs384Key() {
  EVP_PKEY* key = EVP_EC_gen("P-384");
  if (key == nullptr) return Error{"cannot generate an EC P-384 key"};
  return PrivateKey{Algorithm::kES384, own(key)};
}

Result<std::string> writePrivateKeyPem(const PrivateKey& key) {
  BIO* bio = BIO_new(BIO_s_mem());
  if (bio == nullptr || PEM_write_bio_PrivateKey(bio, key.key.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    BIO_free(bio);
    return Error{"cannot write the private key as PEM"};
  }
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(length));
  BIO_free(bio);
  return pem;
}

namespace {

// The required public members of a key, in the lexicographic order RFC 7638 asks for.
std::vector<std::pair<std::string, std::string>> publicMembers(EVP_PKEY* key, Algorithm algorithm) {
  if (algorithm == Algorithm::kRS384) {
    BnPtr n = bnParam(key, OSSL_PKEY_PARAM_RSA_N);
    BnPtr e = bnParam(key, OSSL_PKEY_PARAM_RSA_E);
    if (!n || !e) return {};
    return {{"e", base64UrlEncode(bnBytes(e.get(), 0))}, {"kty", "RSA"}, {"n", base64UrlEncode(bnBytes(n.get(), 0))}};
  }
  BnPtr x = bnParam(key, OSSL_PKEY_PARAM_EC_PUB_X);
  BnPtr y = bnParam(key, OSSL_PKEY_PARAM_EC_PUB_Y);
  if (!x || !y) return {};
  return {{"crv", "P-384"},
          {"kty", "EC"},
          {"x", base64UrlEncode(bnBytes(x.get(), kEs384Half))},
          {"y", base64UrlEncode(bnBytes(y.get(), kEs384Half))}};
}

std::string membersJson(const std::vector<std::pair<std::string, std::string>>& members) {
  std::string out = "{";
  for (const auto& [name, value] : members) {
    if (out.size() > 1) out.push_back(',');
    out += "\"" + name + "\":\"";
    json::appendEscaped(value, out);
    out += "\"";
  }
  return out + "}";
}

}  // namespace

std::string publicJwkJson(const std::shared_ptr<EVP_PKEY>& key, Algorithm algorithm, const std::string& kid) {
  auto members = publicMembers(key.get(), algorithm);
  members.emplace_back("kid", kid);
  members.emplace_back("alg", algorithmName(algorithm));
  members.emplace_back("use", "sig");
  return membersJson(members);
}

std::string jwkThumbprint(const std::shared_ptr<EVP_PKEY>& key, Algorithm algorithm) {
  auto digest = sha256(membersJson(publicMembers(key.get(), algorithm)));
  return digest.ok() ? base64UrlEncode(*digest) : std::string();
}

Result<std::string> signJws(const PrivateKey& key, const std::string& kid, std::string_view payload_json) {
  std::string header = R"({"alg":")" + std::string(algorithmName(key.algorithm)) + R"(","typ":"JWT","kid":")";
  json::appendEscaped(kid, header);
  header += "\"}";
  std::string input = base64UrlEncode(header) + "." + base64UrlEncode(payload_json);
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  size_t length = 0;
  std::string signature;
  bool signed_ok = context != nullptr && EVP_DigestSignInit(context, nullptr, EVP_sha384(), nullptr, key.key.get()) == 1 &&
                   EVP_DigestSign(context, nullptr, &length, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  if (signed_ok) {
    signature.resize(length);
    signed_ok = EVP_DigestSign(context, reinterpret_cast<unsigned char*>(signature.data()), &length,
                               reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    signature.resize(length);
  }
  EVP_MD_CTX_free(context);
  if (!signed_ok) return Error{"signing failed"};
  if (key.algorithm == Algorithm::kES384) {
    signature = rawFromDer(signature);
    if (signature.empty()) return Error{"signing failed: bad ECDSA signature encoding"};
  }
  return input + "." + base64UrlEncode(signature);
}

Result<ParsedJws> parseJws(std::string_view compact) {
  const size_t first = compact.find('.');
  const size_t second = first == std::string_view::npos ? first : compact.find('.', first + 1);
  if (second == std::string_view::npos || compact.find('.', second + 1) != std::string_view::npos) {
    return Error{"not a compact JWS (three base64url parts)"};
  }
  ParsedJws jws;
  auto header = parseSegment(compact.substr(0, first), "header");
  if (!header.ok()) return header.error();
  auto payload = parseSegment(compact.substr(first + 1, second - first - 1), "payload");
  if (!payload.ok()) return payload.error();
  auto signature = base64UrlDecode(compact.substr(second + 1));
  if (!signature.ok()) return Error{"the JWT signature is not base64url"};
  jws.header = std::move(*header);
  jws.payload = std::move(*payload);
  jws.signature = std::move(*signature);
  jws.signing_input = std::string(compact.substr(0, second));
  if (auto alg = json::getString(jws.header, "alg")) jws.alg = std::string(*alg);
  if (auto kid = json::getString(jws.header, "kid")) jws.kid = std::string(*kid);
  return jws;
}

bool verifySignature(const PublicKey& key, std::string_view signing_input, std::string_view signature) {
  std::string der;
  if (key.algorithm == Algorithm::kES384) {
    if (signature.size() != 2 * kEs384Half) return false;
    der = derFromRaw(signature);
    if (der.empty()) return false;
    signature = der;
  }
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  const bool verified = context != nullptr &&
                        EVP_DigestVerifyInit(context, nullptr, EVP_sha384(), nullptr, key.key.get()) == 1 &&
                        EVP_DigestVerify(context, reinterpret_cast<const unsigned char*>(signature.data()), signature.size(),
                                         reinterpret_cast<const unsigned char*>(signing_input.data()), signing_input.size()) == 1;
  EVP_MD_CTX_free(context);
  return verified;
}

}  // namespace fhir::gateway::auth
