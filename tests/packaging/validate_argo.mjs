// Validate Argo Rollouts resources with the published models of
// @kubernetes-models/argo-rollouts (their JSON schemas, generated from the project's CRDs).
// Usage: node validate_argo.mjs DOCS.json (NODE_PATH unused: run from the install folder).
// Prints a JSON list with null (valid) or the validator's message per document.
import { readFileSync } from "node:fs";
import { Rollout } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/Rollout";
import { AnalysisTemplate } from "@kubernetes-models/argo-rollouts/argoproj.io/v1alpha1/AnalysisTemplate";

const kinds = { Rollout, AnalysisTemplate };
const docs = JSON.parse(readFileSync(process.argv[2], "utf8"));
const report = docs.map((doc) => {
  const Model = kinds[doc.kind];
  if (!Model) return `unknown kind ${doc.kind}`;
  try {
    new Model(doc).validate();
    return null;
  } catch (error) {
    return String(error.message || error);
  }
});
console.log(JSON.stringify(report));
