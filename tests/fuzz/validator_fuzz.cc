// SPDX-License-Identifier: Apache-2.0
// The validator (conformance/validator) on a fixed profile set: R4 core plus the bundled
// alignment and subscriptions-backport packages, as the gateway loads them. The input is JSON
// text (validateText: syntax, duplicate keys, encoding, then the resource against its type and
// the profiles it declares in meta.profile).
#include <string>

#include "conformance/validator/validator.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

const fhir::Validator& validator() {
  static const fhir::ValidatorPtr* validator = [] {
    const std::string profiles = GATEWAY_PROFILES_DIR;
    fhir::ValidatorOptions options;
    options.core_package_dir = profiles + "/r4-core/package";
    options.extra_paths = {profiles + "/subscriptions-backport/package", profiles + "/alignment/package"};
    auto created = fhir::createValidator(options);
    if (!created.ok()) fhir::fuzz::fail("cannot load the validator's definitions");
    return new fhir::ValidatorPtr(std::move(*created));
  }();
  return **validator;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)validator();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fhir::IssueList issues;
  validator().validateText(fhir::fuzz::view(data, size), fhir::ValidationRequest{}, issues);
  (void)fhir::toOperationOutcomeJson(issues);
  return 0;
}
