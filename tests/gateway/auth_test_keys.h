// SPDX-License-Identifier: Apache-2.0
#pragma once

// Test-side JWS making, independent of gateway/auth's signer: keys made with OpenSSL's
// generators, assertions signed with EVP directly (ES384 DER signatures turned into R||S here).

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include <memory>
#include <string>

#include "gateway/auth/jose.h"

namespace fhir::testing {

inline std::shared_ptr<EVP_PKEY> makeEcKey() { return std::shared_ptr<EVP_PKEY>(EVP_EC_gen("P-384"), EVP_PKEY_free); }
inline std::shared_ptr<EVP_PKEY> makeRsaKey() {
  return std::shared_ptr<EVP_PKEY>(EVP_RSA_gen(2048), EVP_PKEY_free);
}

inline std::string publicPem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PUBKEY(bio, key);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(length));
  BIO_free(bio);
  return pem;
}

inline std::string privatePem(EVP_PKEY* key) {
  BIO* bio = BIO_new(BIO_s_mem());
  PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
  char* data = nullptr;
  long length = BIO_get_mem_data(bio, &data);
  std::string pem(data, static_cast<size_t>(length));
  BIO_free(bio);
  return pem;
}

// header.payload.signature with `header_json` as given; RSA keys sign RS384 (PKCS#1 v1.5),
// EC keys ES384 (R||S, 48 bytes each).
inline std::string signCompact(EVP_PKEY* key, const std::string& header_json, const std::string& claims_json) {
  using gateway::auth::base64UrlEncode;
  const std::string input = base64UrlEncode(header_json) + "." + base64UrlEncode(claims_json);
  EVP_MD_CTX* context = EVP_MD_CTX_new();
  size_t length = 0;
  EVP_DigestSignInit(context, nullptr, EVP_sha384(), nullptr, key);
  EVP_DigestSign(context, nullptr, &length, reinterpret_cast<const unsigned char*>(input.data()), input.size());
  std::string signature(length, '\0');
  EVP_DigestSign(context, reinterpret_cast<unsigned char*>(signature.data()), &length,
                 reinterpret_cast<const unsigned char*>(input.data()), input.size());
  signature.resize(length);
  EVP_MD_CTX_free(context);
  if (EVP_PKEY_is_a(key, "EC")) {
    const auto* der = reinterpret_cast<const unsigned char*>(signature.data());
    ECDSA_SIG* ecdsa = d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(signature.size()));
    std::string raw(96, '\0');
    BN_bn2binpad(ECDSA_SIG_get0_r(ecdsa), reinterpret_cast<unsigned char*>(raw.data()), 48);
    BN_bn2binpad(ECDSA_SIG_get0_s(ecdsa), reinterpret_cast<unsigned char*>(raw.data()) + 48, 48);
    ECDSA_SIG_free(ecdsa);
    signature = raw;
  }
  return input + "." + base64UrlEncode(signature);
}

inline std::string signAssertion(EVP_PKEY* key, const std::string& kid, const std::string& claims_json) {
  const std::string alg = EVP_PKEY_is_a(key, "EC") ? "ES384" : "RS384";
  return signCompact(key, R"({"alg":")" + alg + R"(","typ":"JWT","kid":")" + kid + R"("})", claims_json);
}

// HS384 with `secret` as the HMAC key (the key-confusion attack uses the public key's PEM).
inline std::string signHs384(const std::string& secret, const std::string& kid, const std::string& claims_json) {
  using gateway::auth::base64UrlEncode;
  const std::string input = base64UrlEncode(R"({"alg":"HS384","typ":"JWT","kid":")" + kid + R"("})") + "." +
                            base64UrlEncode(claims_json);
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  HMAC(EVP_sha384(), secret.data(), static_cast<int>(secret.size()), reinterpret_cast<const unsigned char*>(input.data()),
       input.size(), mac, &length);
  return input + "." + base64UrlEncode(std::string(reinterpret_cast<char*>(mac), length));
}

inline std::string assertionClaims(const std::string& client, const std::string& aud, int64_t exp_seconds,
                                   const std::string& jti) {
  return R"({"iss":")" + client + R"(","sub":")" + client + R"(","aud":")" + aud + R"(","exp":)" +
         std::to_string(exp_seconds) + R"(,"jti":")" + jti + R"("})";
}

}  // namespace fhir::testing
