/*
 * Rule files for the end-to-end tests of content rules: a marker rule adds X-Rule-Hit with its
 * id to the delivered copy when its condition holds, so a test reads which rules fired off the
 * message the internal server got.
 */

/**
 * One marker rule as a YAML list item under `rules:`. `when` is the condition's YAML, one line
 * or several; `extra` is more rule keys, each line indented four spaces and ending in a newline.
 */
export function markerRule(id: string, when: string, extra = ''): string {
  return `  - id: ${id}
    description: marks ${id}
    owner: test@example.com
    mode: enforce
    direction: any
    order: 500
${extra}    when:
${when.split('\n').map((line) => `      ${line}`).join('\n')}
    actions:
      - add_header: { name: X-Rule-Hit, value: ${id} }
`;
}
