// The official TypeScript SDK (@anthropic-ai/sdk, pinned in tests/e2e/package.json) against the
// router. Driven by tests/e2e/test_typescript_sdk.py, which scripts the fake upstream and checks
// what it received. Usage: node sdk_check.mjs <scenario>; env ROUTER_URL, ROUTER_KEY.
// Prints one JSON line: what the SDK produced.
import Anthropic from '@anthropic-ai/sdk';
import { betaTool } from '@anthropic-ai/sdk/helpers/beta/json-schema';

const client = new Anthropic({
  baseURL: process.env.ROUTER_URL,
  apiKey: process.env.ROUTER_KEY,
  maxRetries: 0,
  timeout: 30_000,
});
const MODEL = 'claude-opus-5-5';

const weatherTool = () => {
  const calls = [];
  const tool = betaTool({
    name: 'get_weather',
    description: 'The current weather in a city',
    inputSchema: {
      type: 'object',
      properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['c', 'f'] } },
      required: ['city'],
      additionalProperties: false,
    },
    run: (input) => {
      calls.push(input);
      return `Sunny, 21 degrees in ${input.city}`;
    },
  });
  return { tool, calls };
};

const scenarios = {
  // messages.stream(): the accumulator, text events and finalMessage().
  async 'stream-text'() {
    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 200,
      messages: [{ role: 'user', content: 'Say hello' }],
    });
    const deltas = [];
    const events = [];
    stream.on('text', (delta) => deltas.push(delta));
    stream.on('streamEvent', (event) => events.push(event.type));
    const message = await stream.finalMessage();
    return { deltas, events, message };
  },

  // messages.stream() with a tool: input_json deltas accumulate into the parsed input.
  async 'stream-tool'() {
    const { tool } = weatherTool();
    const stream = client.messages.stream({
      model: MODEL,
      max_tokens: 200,
      tools: [{ name: tool.name, description: tool.description, input_schema: tool.input_schema }],
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
    });
    const jsonDeltas = [];
    stream.on('inputJson', (partial) => jsonDeltas.push(partial));
    const message = await stream.finalMessage();
    return { jsonDeltas, message };
  },

  // The tool-use helper: beta.messages.toolRunner() runs the tool and sends the result back.
  // `thread: false` sends the full history every turn (the default keeps it on the server).
  async 'tool-runner'() {
    return runToolRunner({ thread: false });
  },

  // The same helper with its default server-held thread (`thread: {type: "create"}`, then
  // only the new messages with `thread: {type: "continue", previous_message_id}`).
  async 'tool-runner-threaded'() {
    return runToolRunner({});
  },
};

async function runToolRunner(extra) {
  const { tool, calls } = weatherTool();
  const runner = client.beta.messages.toolRunner({
    model: MODEL,
    max_tokens: 300,
    messages: [{ role: 'user', content: 'What is the weather in Paris?' }],
    tools: [tool],
    stream: true,
    max_iterations: 4,
    ...extra,
  });
  const turns = [];
  for await (const stream of runner) {
    const message = await stream.finalMessage();
    turns.push({ stop_reason: message.stop_reason, content: message.content });
  }
  const final = await runner.done();
  return { calls, turns, final };
}

const name = process.argv[2];
if (!(name in scenarios)) {
  console.error(`unknown scenario ${name}; one of ${Object.keys(scenarios).join(', ')}`);
  process.exit(2);
}
try {
  console.log(JSON.stringify(await scenarios[name]()));
} catch (error) {
  console.error(error?.stack ?? error);
  if (error?.error) console.error(JSON.stringify(error.error));
  process.exit(1);
}
