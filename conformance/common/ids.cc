// SPDX-License-Identifier: Apache-2.0
#include "conformance/common/ids.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

namespace fhir {

namespace {

// OpenSSL 3 looks the algorithm up on every one-shot SHA256() call (EVP_MD_fetch), which cost
// more than the hashing itself for our short inputs: fetch it once, reuse a context per thread.
const EVP_MD* sha256Method() {
  static EVP_MD* const method = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  return method;
}

struct DigestContext {
  DigestContext() : context(EVP_MD_CTX_new()) {}
  ~DigestContext() { EVP_MD_CTX_free(context); }
  EVP_MD_CTX* context;
};

// The 32-byte digest of `bytes`.
void sha256(std::string_view bytes, unsigned char (&digest)[SHA256_DIGEST_LENGTH]) {
  unsigned int length = 0;
  thread_local DigestContext digest_context;
  EVP_MD_CTX* context = digest_context.context;
  if (!EVP_DigestInit_ex2(context, sha256Method(), nullptr) || !EVP_DigestUpdate(context, bytes.data(), bytes.size()) ||
      !EVP_DigestFinal_ex(context, digest, &length) || length != SHA256_DIGEST_LENGTH) {
    // Not reachable with a working libcrypto; the one-shot call is the fallback.
    SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  }
}

constexpr char kHex[] = "0123456789abcdef";

}  // namespace

void sha256HexInto(std::string_view bytes, std::string& hex) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  sha256(bytes, digest);
  hex.resize(2 * SHA256_DIGEST_LENGTH);
  for (size_t index = 0; index < SHA256_DIGEST_LENGTH; ++index) {
    hex[2 * index] = kHex[digest[index] >> 4];
    hex[2 * index + 1] = kHex[digest[index] & 0xF];
  }
}

Sha256Stream::Sha256Stream() : context_(EVP_MD_CTX_new()) {
  EVP_DigestInit_ex2(static_cast<EVP_MD_CTX*>(context_), sha256Method(), nullptr);
}

Sha256Stream::~Sha256Stream() { EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(context_)); }

void Sha256Stream::update(std::string_view bytes) {
  EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(context_), bytes.data(), bytes.size());
}

std::string Sha256Stream::hex() {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  unsigned int length = 0;
  auto* context = static_cast<EVP_MD_CTX*>(context_);
  EVP_DigestFinal_ex(context, digest, &length);
  EVP_DigestInit_ex2(context, sha256Method(), nullptr);
  std::string out(2 * SHA256_DIGEST_LENGTH, '0');
  for (size_t index = 0; index < SHA256_DIGEST_LENGTH; ++index) {
    out[2 * index] = kHex[digest[index] >> 4];
    out[2 * index + 1] = kHex[digest[index] & 0xF];
  }
  return out;
}

std::string sha256Hex(std::string_view bytes) {
  std::string out;
  sha256HexInto(bytes, out);
  return out;
}

void deriveIdInto(std::string_view joined, std::string& id) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  sha256(joined, digest);
  // The first 16 bytes as 8-4-4-4-12 hex digits; RFC 9562 version 8 (custom) UUID: version
  // nibble 8, variant bits 10.
  id.resize(36);
  size_t at = 0;
  for (size_t index = 0; index < 16; ++index) {
    if (index == 4 || index == 6 || index == 8 || index == 10) id[at++] = '-';
    id[at++] = kHex[digest[index] >> 4];
    id[at++] = kHex[digest[index] & 0xF];
  }
  static constexpr char kVariant[] = "89ab";
  id[14] = '8';
  id[19] = kVariant[(digest[8] >> 4) & 0x3];
}

void deriveIdInto(std::initializer_list<std::string_view> parts, std::string& joined, std::string& id) {
  joined.clear();
  bool first = true;
  for (std::string_view part : parts) {
    if (!first) joined.push_back('\x1f');
    first = false;
    joined.append(part);
  }
  deriveIdInto(joined, id);
}

std::string deriveId(std::initializer_list<std::string_view> parts) {
  std::string joined, id;
  deriveIdInto(parts, joined, id);
  return id;
}

bool isValidNpi(std::string_view npi) {
  if (npi.size() != 10) return false;
  for (char c : npi) {
    if (c < '0' || c > '9') return false;
  }
  // Luhn over "80840" + first nine digits; the prefix contributes a constant 24.
  int sum = 24;
  for (int position = 8; position >= 0; --position) {
    int digit = npi[static_cast<size_t>(position)] - '0';
    if ((8 - position) % 2 == 0) {  // rightmost of the payload is doubled
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  int check = (10 - (sum % 10)) % 10;
  return check == npi[9] - '0';
}

}  // namespace fhir
