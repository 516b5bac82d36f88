// SPDX-License-Identifier: Apache-2.0
#include "mappers/common/ids.h"

#include <openssl/sha.h>

namespace fhir::mappers {

std::string sha256Hex(std::string_view bytes) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), digest);
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(2 * SHA256_DIGEST_LENGTH);
  for (unsigned char byte : digest) {
    out.push_back(kHex[byte >> 4]);
    out.push_back(kHex[byte & 0xF]);
  }
  return out;
}

std::string deriveId(std::initializer_list<std::string_view> parts) {
  std::string joined;
  bool first = true;
  for (std::string_view part : parts) {
    if (!first) joined.push_back('\x1f');
    first = false;
    joined.append(part);
  }
  std::string hex = sha256Hex(joined).substr(0, 32);
  // RFC 9562 version 8 (custom) UUID: version nibble 8, variant bits 10.
  hex[12] = '8';
  static constexpr char kVariant[] = "89ab";
  hex[16] = kVariant[(hex[16] >= 'a' ? hex[16] - 'a' + 10 : hex[16] - '0') & 0x3];
  return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
         hex.substr(16, 4) + "-" + hex.substr(20, 12);
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

}  // namespace fhir::mappers
