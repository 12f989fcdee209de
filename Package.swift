// swift-tools-version:6.0
// qdist: compress and fine-tune Llama-family models, on a laptop or across an Open MPI cluster.
import PackageDescription

// The numeric libraries are optimized in debug builds too: tests and the debug `qdist` they run
// push SmolLM2-sized matrices through element-wise Swift loops (quantizers, norms, attention),
// which unoptimized code makes 5–50× slower. Swift's -O keeps IEEE semantics (no fast-math,
// no FMA contraction), so results are bit-identical to -Onone.
let optimizedInDebug: [SwiftSetting] = [.unsafeFlags(["-O"], .when(configuration: .debug))]

let package = Package(
    name: "qdist",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "qdist", targets: ["qdist"]),
        .executable(name: "qdist-bench", targets: ["QDistBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        // C shims: Open MPI's handles are macros Swift cannot import; the shims return them.
        .systemLibrary(name: "CMPI", path: "CMPI", pkgConfig: "ompi-c"),
        .systemLibrary(name: "CBLAS", path: "Sources/CBLAS"),

        .target(name: "QDistTensor", dependencies: ["CBLAS"], swiftSettings: optimizedInDebug),
        .target(name: "QDistComm", dependencies: ["CMPI", "CBLAS", "QDistTensor"]),
        .target(name: "QDistIO", dependencies: ["QDistTensor"], swiftSettings: optimizedInDebug),
        .target(name: "QDistModel", dependencies: ["QDistTensor", "QDistIO"], swiftSettings: optimizedInDebug),
        .target(name: "QDistQuant", dependencies: ["CBLAS", "QDistTensor", "QDistIO"], swiftSettings: optimizedInDebug),
        .target(name: "QDistTrain", dependencies: ["QDistTensor", "QDistIO", "QDistQuant"], swiftSettings: optimizedInDebug),
        .target(name: "QDistPipeline", dependencies: ["QDistTensor", "QDistComm", "QDistIO", "QDistModel", "QDistQuant", "QDistTrain", "Yams"], swiftSettings: optimizedInDebug),
        .executableTarget(
            name: "qdist",
            dependencies: [
                "QDistTensor", "QDistComm", "QDistIO", "QDistModel", "QDistQuant", "QDistTrain", "QDistPipeline",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]),
        .executableTarget(
            name: "QDistBench",
            dependencies: ["QDistTensor", "QDistModel", "QDistQuant", "CBLAS"],
            path: "Benchmarks/QDistBench"),

        // The fuzz driver the reliability tests run (one process per reader and seed, so a trap
        // is caught from outside): Tests/QDistFuzz.
        .executableTarget(name: "QDistFuzz", dependencies: ["QDistIO", "QDistPipeline", "QDistTensor"], path: "Tests/QDistFuzz"),

        // Runs the built binary (and mpirun, and Python references) for end-to-end tests.
        .target(name: "QDistTestSupport", dependencies: ["QDistIO"], path: "Tests/QDistTestSupport"),

        .testTarget(name: "QDistTensorTests", dependencies: ["QDistTensor"]),
        .testTarget(name: "QDistCommTests", dependencies: ["QDistComm", "QDistTestSupport", "qdist"]),
        // Fixtures/ holds binary reference vectors the tests read from the source tree.
        .testTarget(name: "QDistIOTests", dependencies: ["QDistIO", "QDistTestSupport", "qdist"], exclude: ["Fixtures"]),
        .testTarget(name: "QDistModelTests", dependencies: ["QDistModel", "QDistIO", "QDistTestSupport"]),
        .testTarget(name: "QDistPipelineTests", dependencies: ["QDistPipeline", "QDistTestSupport", "qdist", "QDistFuzz"]),
        .testTarget(name: "QDistQuantTests", dependencies: ["QDistQuant", "QDistIO", "QDistTensor"]),
        .testTarget(name: "QDistTrainTests", dependencies: ["QDistTrain", "QDistQuant"]),
        .testTarget(name: "qdistTests", dependencies: ["QDistTrain", "QDistTestSupport", "qdist"]),
    ]
)
