// SPDX-License-Identifier: Apache-2.0
#pragma once

// The one validator every path into the store goes through.
//
// A Validator is created once (definitions loaded, plans compiled lazily or eagerly) and then
// shared by all request threads: validate() is const and thread-safe, with no locks on the hot
// path. Problems in the resource become Issues with `expression` paths carrying indices
// (`Patient.name[0].given[1]`); the validator never throws for bad data.

#include <memory>
#include <string>
#include <vector>

#include "conformance/common/result.h"
#include "conformance/json/json.h"
#include "conformance/outcome/outcome.h"

namespace fhir {

struct ValidatorOptions {
  // Folder holding the R4 core package (StructureDefinition-*.json, ValueSet-*, CodeSystem-*).
  // Empty means the bundled fhir_profiles/r4-core/package.
  std::string core_package_dir;
  // Extra conformance resources: FHIR package folders or single JSON files
  // (StructureDefinition, ValueSet, CodeSystem, ConceptMap).
  std::vector<std::string> extra_paths;
  // Resource types (e.g. "Patient", "Bundle") or profile URLs whose plans are compiled at
  // creation, with the plans of every data type they use, so that the first request does not pay
  // for them. Everything else is compiled on first use. Unknown names are ignored.
  std::vector<std::string> preload;
  // What cannot be checked for lack of local definitions is reported "not checked"
  // (`not-supported`) with this severity: a required or extensible binding whose value set is not
  // available locally (e.g. a VSAC value set), a required binding whose code cannot be decided
  // locally, a constraint that fails only because memberOf() could not decide, and an HL7
  // extension from an extensions package a loaded IG depends on but that is not loaded.
  // kWarning as the HL7 validator does; kError makes them fail validation.
  Severity unchecked_binding = Severity::kWarning;
  // A dependency named in a loaded package's package.json that is not loaded itself: false
  // reports it in `warnings` (createValidator); true makes createValidator fail.
  bool strict_dependencies = false;
  // The HL7 validator's "security checks": a string value holding what looks like an HTML tag
  // (`<script>`, `<a href="..">`) is an error. Off: not reported.
  bool security_checks = false;
  // An unescaped HTML tag in a markdown value is an error (the HL7 validator's noHtmlInMarkdown).
  bool no_html_in_markdown = false;
  // False skips the contained resources (the HL7 validator's validateContains=IGNORE), including
  // whether each one is referenced (dom-3).
  bool validate_contained = true;
  // False makes a uri/url/canonical on an example domain (example.org, example.com, example.net
  // and their subdomains, RFC 2606) an error, as the HL7 validator does with examples off.
  bool allow_example_urls = true;
  // The HL7 validator's validateReference CHECK_EXISTS: a relative reference ([type]/[id]) in a
  // resource held by a Bundle or Parameters must resolve to a resource of that Bundle or
  // Parameters; an error otherwise. Off: such references are not resolved.
  bool check_references = false;
};

struct ValidationRequest {
  // Profiles (canonical URLs) to validate against besides the base definition of the
  // resource type and the profiles the resource declares in meta.profile.
  std::vector<std::string> profiles;
};

class Validator {
 public:
  virtual ~Validator() = default;

  // Validates one resource (a Bundle validates its entries recursively). Appends issues.
  virtual void validate(const json::Value& resource, const ValidationRequest& request,
                        IssueList& issues) const = 0;

  // Validates JSON text, including the JSON-form checks that need the text itself (syntax,
  // duplicate keys, encoding).
  virtual void validateText(std::string_view text, const ValidationRequest& request,
                            IssueList& issues) const = 0;

  // True when `url` names a StructureDefinition this validator knows.
  virtual bool knowsProfile(const std::string& url) const = 0;

  // Problems found while loading that do not stop validation: a dependency named in a loaded
  // package's package.json that is not loaded, with the references that go unchecked.
  virtual const std::vector<std::string>& startupWarnings() const = 0;
};

using ValidatorPtr = std::shared_ptr<const Validator>;

// Loads the definitions and returns the shared validator. An Error names the file that could not
// be read or parsed. Cost: the core package folder is indexed by file name only (a few ms);
// extra_paths files are parsed eagerly; plans are compiled per StructureDefinition on first use
// (a few ms per resource type with its data types) unless listed in `preload`. With
// `strict_dependencies`, a dependency of an extra package that is not loaded is an Error.
Result<ValidatorPtr> createValidator(const ValidatorOptions& options);

}  // namespace fhir
