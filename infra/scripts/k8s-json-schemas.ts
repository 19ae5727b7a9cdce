// Kubernetes' OpenAPI v2 document (api/openapi-spec/swagger.json of the k8s.io/kubernetes module)
// → one stand-alone, strict JSON schema per resource kind, in the layout kubeconform reads:
//   <out>/<kind>-<group>-<version>.json (core group: <kind>-<version>.json), e.g. deployment-apps-v1.json
// Usage: node --import tsx infra/scripts/k8s-json-schemas.ts swagger.json OUT_DIR
//
// The same transformation as `openapi2jsonschema --expanded --kubernetes --stand-alone --strict`,
// which makes kubeconform's default schemas (github.com/yannh/kubernetes-json-schema, not
// reachable from here):
// - IntOrString = string | integer, Quantity = string | number;
// - apiVersion and kind are enums of the resource's group/version and kind;
// - strict: every object with `properties` gets `additionalProperties: false` (unknown fields fail);
// - stand-alone: every $ref is inlined;
// - a field its object does not list in `required` may also be null (the API server takes null
//   as unset). openapi2jsonschema uses a coarser rule (null allowed for every field of an object
//   without any `required`); this one is per field.
// One file per group-version-kind (a definition served under several gets each its own enums).
// Kinds whose schema refers to itself (CustomResourceDefinition's JSONSchemaProps) cannot be
// inlined and are skipped, as openapi2jsonschema does; they are listed on stderr.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

type Schema = { [key: string]: unknown };
type Gvk = { group: string; version: string; kind: string };

const REF_PREFIX = '#/definitions/';

const OVERRIDES: Record<string, Schema> = {
  'io.k8s.apimachinery.pkg.util.intstr.IntOrString': { oneOf: [{ type: 'string' }, { type: 'integer' }] },
  'io.k8s.apimachinery.pkg.api.resource.Quantity': { oneOf: [{ type: 'string' }, { type: 'number' }] },
};

class RecursiveSchemaError extends Error {}

function isSchema(value: unknown): value is Schema {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A copy of `schema` with every $ref replaced by a copy of its target (and the target's refs, …). */
function inline(schema: unknown, definitions: Record<string, Schema>, path: string[] = []): unknown {
  if (Array.isArray(schema)) return schema.map((item) => inline(item, definitions, path));
  if (!isSchema(schema)) return schema;
  if (typeof schema.$ref === 'string') {
    const name = schema.$ref.slice(REF_PREFIX.length);
    if (!schema.$ref.startsWith(REF_PREFIX) || !(name in definitions)) throw new Error(`unresolvable $ref ${schema.$ref}`);
    if (path.includes(name)) throw new RecursiveSchemaError(`${[...path, name].join(' → ')}`);
    const { $ref: _ref, ...siblings } = schema; // a description next to the $ref
    return { ...(inline(siblings, definitions, path) as Schema), ...(inline(definitions[name], definitions, [...path, name]) as Schema) };
  }
  return Object.fromEntries(Object.entries(schema).map(([key, value]) => [key, inline(value, definitions, path)]));
}

/** additionalProperties: false on every object with properties; null for fields not required. */
function strictAndNullable(schema: unknown): void {
  if (Array.isArray(schema)) return schema.forEach(strictAndNullable);
  if (!isSchema(schema)) return;
  if (isSchema(schema.properties)) {
    if (!('additionalProperties' in schema)) schema.additionalProperties = false;
    const required = new Set(Array.isArray(schema.required) ? schema.required : []);
    for (const [field, fieldSchema] of Object.entries(schema.properties)) {
      if (!required.has(field) && isSchema(fieldSchema)) allowNull(fieldSchema);
    }
  }
  for (const value of Object.values(schema)) strictAndNullable(value);
}

function allowNull(schema: Schema): void {
  if (typeof schema.type === 'string') schema.type = [schema.type, 'null'];
  else if (Array.isArray(schema.oneOf)) schema.oneOf = [...schema.oneOf, { type: 'null' }];
}

function fileName({ group, version, kind }: Gvk): string {
  const groupPart = group === '' ? '' : `-${group.split('.')[0]}`; // kubeconform's KindSuffix
  return `${kind}${groupPart}-${version}.json`.toLowerCase();
}

function resourceSchema(definition: Schema, gvk: Gvk, definitions: Record<string, Schema>): Schema {
  const schema = inline(definition, definitions) as Schema;
  const properties = schema.properties as Record<string, Schema>;
  properties.apiVersion = { ...properties.apiVersion, enum: [gvk.group === '' ? gvk.version : `${gvk.group}/${gvk.version}`] };
  properties.kind = { ...properties.kind, enum: [gvk.kind] };
  strictAndNullable(schema);
  delete schema['x-kubernetes-group-version-kind'];
  return { $schema: 'http://json-schema.org/schema#', type: 'object', ...schema };
}

function main(swaggerPath: string, outDir: string): void {
  const document = JSON.parse(readFileSync(swaggerPath, 'utf8')) as { swagger?: string; definitions: Record<string, Schema> };
  if (document.swagger !== '2.0') throw new Error(`${swaggerPath}: not an OpenAPI 2.0 document`);
  const definitions = { ...document.definitions, ...OVERRIDES };
  mkdirSync(outDir, { recursive: true });
  const written = new Map<string, string>();
  const skipped: string[] = [];
  for (const [name, definition] of Object.entries(definitions)) {
    const gvks = definition['x-kubernetes-group-version-kind'] as Gvk[] | undefined;
    if (!gvks || !isSchema(definition.properties) || !('apiVersion' in definition.properties) || !('kind' in definition.properties)) continue;
    for (const gvk of gvks) {
      const file = fileName(gvk);
      if (written.has(file)) throw new Error(`${file}: both ${written.get(file)} and ${name}`);
      try {
        writeFileSync(join(outDir, file), JSON.stringify(resourceSchema(definition, gvk, definitions)));
        written.set(file, name);
      } catch (error) {
        if (!(error instanceof RecursiveSchemaError)) throw error;
        skipped.push(file);
      }
    }
  }
  console.error(`k8s-json-schemas: ${written.size} schemas; skipped (refer to themselves): ${skipped.join(' ') || 'none'}`);
}

const [swaggerPath, outDir] = process.argv.slice(2);
if (!swaggerPath || !outDir) {
  console.error('usage: k8s-json-schemas.ts swagger.json OUT_DIR');
  process.exit(2);
}
main(swaggerPath, outDir);
