/**
 * A throwaway NATS JetStream cluster for fault tests: three (or `size`) nats-server nodes on free loopback
 * ports, clustered over routes, each with its store in a temporary directory, with kill (SIGKILL) and
 * restart controls per node and waits on JetStream's own view (a meta leader; a stream's leader and its
 * replicas current). Scoped: closing the scope kills the nodes and deletes their data. The shared server
 * on the standard port is never touched.
 */
import { spawn, type ChildProcess } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { type JetStreamManager, jetstreamManager, StorageType, type StreamInfo } from "@nats-io/jetstream"
import { connect, type NatsConnection } from "@nats-io/transport-node"
import * as Effect from "effect/Effect"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"
import * as TestServices from "effect/TestServices"
import { awaitPort, freePort, type ThrowawayServer } from "./servers.js"

const natsServer = process.env.NATS_SERVER ?? "/usr/sbin/nats-server"

/** One node of the cluster. */
export interface ClusterNode extends ThrowawayServer {
  /** Its `server_name`, as stream info reports leaders and replicas. */
  readonly name: string
  /** Whether it is running (started by the test and not killed since). */
  readonly running: () => boolean
}

export interface ThrowawayCluster {
  readonly nodes: ReadonlyArray<ClusterNode>
  /** Every node's URL: the seed list a client is given. */
  readonly urls: ReadonlyArray<string>
  readonly node: (name: string) => ClusterNode
  /**
   * The helper's JetStream manager, made once the meta group had a leader. Asking for a new one later runs
   * into a meta election after a restart ("JetStream system temporarily unavailable"); this one does not
   * ask again, and its requests may still fail while the cluster settles: retry them.
   */
  readonly manager: JetStreamManager
  /**
   * Waits (up to `within`, default 60 s) until JetStream places a stream on every node, i.e. every node is
   * up and back in the cluster (a node restarted rejoins over its routes).
   */
  readonly awaitAll: (within?: number) => Effect.Effect<void, Error>
  /** The stream's info as the cluster reports it now (through a connection of the helper's own). */
  readonly streamInfo: (stream: string) => Effect.Effect<StreamInfo, Error>
  /**
   * Waits (up to `within`, default 60 s) until the stream has a leader and every other running node is a
   * current replica of it, and returns the leader's name.
   */
  readonly awaitStream: (stream: string, within?: number) => Effect.Effect<string, Error>
  /** The name of the node leading a stream's consumer now, if it has a leader. */
  readonly consumerLeader: (stream: string, consumer: string) => Effect.Effect<string | undefined, Error>
}

/** A cluster whose nodes are up and have elected a JetStream meta leader. */
export const throwawayNatsCluster = (size = 3): Effect.Effect<ThrowawayCluster, Error, Scope.Scope> =>
  Effect.gen(function* () {
    const clusterName = `ees_${process.pid}_${Math.floor(Math.random() * 1e9)}`
    const ports = yield* Effect.forEach(Array.from({ length: size }), () =>
      Effect.all({ client: freePort, route: freePort })
    )
    const root = fs.mkdtempSync(path.join(os.tmpdir(), "ees-nats-cluster-"))
    const children = new Map<string, ChildProcess>()
    const killAll = () => children.forEach((child) => child.kill("SIGKILL"))
    process.once("exit", killAll)
    yield* Effect.addFinalizer(() =>
      Effect.forEach(nodes, (node) => Effect.ignore(node.kill), { discard: true }).pipe(
        Effect.zipRight(
          Effect.sync(() => {
            process.removeListener("exit", killAll)
            fs.rmSync(root, { recursive: true, force: true })
          })
        )
      )
    )
    const nodes: Array<ClusterNode> = ports.map(({ client, route }, i) => {
      const name = `n${i + 1}`
      const dir = path.join(root, name)
      fs.mkdirSync(dir)
      const configFile = path.join(dir, "nats.conf")
      const routes = ports.filter((_, j) => j !== i).map((p) => `nats-route://127.0.0.1:${p.route}`)
      fs.writeFileSync(
        configFile,
        [
          `server_name: ${name}`,
          `listen: "127.0.0.1:${client}"`,
          `jetstream { store_dir: ${JSON.stringify(dir)} }`,
          `cluster { name: ${clusterName}, listen: "127.0.0.1:${route}", routes: ${JSON.stringify(routes)} }`
        ].join("\n")
      )
      const kill = Effect.async<void>((resume) => {
        const current = children.get(name)
        children.delete(name)
        if (current === undefined || current.exitCode !== null || current.signalCode !== null) {
          return resume(Effect.void)
        }
        current.once("exit", () => resume(Effect.void))
        current.kill("SIGKILL")
      })
      const start = Effect.suspend(() => {
        children.set(name, spawn(natsServer, ["-c", configFile], { stdio: "ignore" }))
        return awaitPort(client)
      })
      return { name, url: `nats://127.0.0.1:${client}`, port: client, kill, start, running: () => children.has(name) }
    })
    yield* Effect.forEach(nodes, (node) => node.start, { discard: true, concurrency: "unbounded" })
    const urls = nodes.map((node) => node.url)

    // the helper's own connection, for JetStream's view of the cluster
    const connection = yield* Effect.acquireRelease(
      Effect.tryPromise({
        try: () => connect({ servers: urls, maxReconnectAttempts: -1, reconnectTimeWait: 200 }),
        catch: asError
      }),
      (nc) => Effect.promise(() => nc.close())
    )
    // JetStream answers (account info, which the manager asks for) once the meta group has a leader
    const jsm = yield* retryFor(
      Effect.tryPromise({ try: () => jetstreamManager(connection), catch: asError }),
      60_000,
      "no JetStream meta leader"
    )
    // and places a stream on every node once they all joined the meta group: make and drop one to know
    let probes = 0
    const awaitAll = (within = 60_000) =>
      Effect.suspend(() => {
        const name = `EES_CLUSTER_READY_${++probes}`
        return retryFor(
          Effect.tryPromise({
            try: () =>
              jsm.streams
                .add({ name, subjects: [name.toLowerCase()], num_replicas: size, storage: StorageType.Memory })
                .then(() => jsm.streams.delete(name)),
            catch: asError
          }),
          within,
          `no stream placed on ${size} nodes`
        )
      })
    yield* awaitAll()

    const streamInfo = (stream: string) =>
      Effect.tryPromise({ try: () => jsm.streams.info(stream), catch: asError }).pipe(
        Effect.timeoutFail({ duration: "5 seconds", onTimeout: () => new Error(`stream info ${stream} timed out`) })
      )
    const awaitStream = (stream: string, within = 60_000) =>
      retryFor(
        Effect.flatMap(streamInfo(stream), (info) => {
          const leader = info.cluster?.leader
          const replicas = info.cluster?.replicas ?? []
          const followers = nodes.filter((node) => node.running() && node.name !== leader)
          const current = followers.every((node) =>
            replicas.some((replica) => replica.name === node.name && replica.current && !replica.offline)
          )
          return leader !== undefined && leader !== "" && current
            ? Effect.succeed(leader)
            : Effect.fail(new Error(`stream ${stream}: leader ${leader}, replicas ${JSON.stringify(replicas)}`))
        }),
        within,
        `stream ${stream} has no leader with current replicas`
      )
    return {
      nodes,
      urls,
      node: (name: string) => {
        const node = nodes.find((n) => n.name === name)
        if (node === undefined) throw new Error(`no node ${name}`)
        return node
      },
      manager: jsm,
      awaitAll,
      streamInfo,
      awaitStream,
      consumerLeader: (stream: string, consumer: string) =>
        Effect.tryPromise({ try: () => jsm.consumers.info(stream, consumer), catch: asError }).pipe(
          Effect.timeoutFail({
            duration: "5 seconds",
            onTimeout: () => new Error(`consumer info ${consumer} timed out`)
          }),
          Effect.map((info) => (info.cluster?.leader === "" ? undefined : info.cluster?.leader))
        )
    }
  })

/** The name of the server a connection is connected to now. */
export const connectedTo = (connection: NatsConnection): string | undefined => connection.info?.server_name

const asError = (cause: unknown) => (cause instanceof Error ? cause : new Error(String(cause)))

/** Retries `effect` every 250 ms for up to `within` ms (on the live clock), then fails with `what`. */
const retryFor = <A>(effect: Effect.Effect<A, Error>, within: number, what: string) =>
  effect.pipe(
    Effect.retry(Schedule.spaced("250 millis")),
    Effect.timeoutFail({ duration: within, onTimeout: () => new Error(`${what} within ${within} ms`) }),
    TestServices.provideLive
  )
