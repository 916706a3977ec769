/** Temporal environments on the real servers the project provisions (never the SDK's download). */
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, DefaultLogger, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { installRuntime } from '../../workers/runtime.js';
import { toolPaths } from '../../scripts/provision.js';
import { RoadIssueType, RoadKind, RoadPhase, RoadStatus, RoadTaskId } from '../../workflows/definitions.js';
import { WORKFLOWS_PATH } from '../../workers/worker.js';

const ROAD_KEYS = [RoadKind, RoadStatus, RoadTaskId, RoadIssueType, RoadPhase];
// Expected failures (an invalid request) would otherwise fill the output with WARN lines.
const quietRuntime = () => installRuntime({ level: 'ERROR', shutdownSignals: [] });

/** The Java time-skipping test server, with ROAD's search attributes registered. */
export async function timeSkippingEnv(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  const env = await TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: toolPaths().testServer } },
  });
  await env.connection.operatorService.addSearchAttributes({
    namespace: env.namespace ?? 'default',
    searchAttributes: {
      RoadKind: 2, // INDEXED_VALUE_TYPE_KEYWORD
      RoadStatus: 2,
      RoadTaskId: 2,
      RoadIssueType: 2,
      RoadPhase: 7, // INDEXED_VALUE_TYPE_KEYWORD_LIST
    },
  });
  return env;
}

/** The Temporal CLI dev server (Updates, listing and search attributes work here). */
export async function devServerEnv(): Promise<TestWorkflowEnvironment> {
  quietRuntime();
  return TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: toolPaths().temporalCli }, searchAttributes: ROAD_KEYS, ip: '127.0.0.1' },
  });
}

/** Bundle once per test file and hand the result to every worker of that file. */
export function bundleWorkflows(): Promise<WorkflowBundleWithSourceMap> {
  return bundleWorkflowCode({ workflowsPath: WORKFLOWS_PATH, logger: new DefaultLogger('WARN') });
}
