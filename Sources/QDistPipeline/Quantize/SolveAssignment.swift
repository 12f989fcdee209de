/// Who solves what: the linears of one calibration stage cut into work items and dealt to
/// ranks so that they finish together (DESIGN.md, "Owners").
///
/// A GPTQ solve of a `(rows, columns)` linear costs about `columns³/3` (the Cholesky work on its
/// Hessian, paid once per item) plus `columns²·rows` (the column sweep with lazy updates). Items
/// go to ranks largest first, each to the least-loaded rank (LPT scheduling, within 4/3 of the
/// best makespan). When there are more ranks than linears, the most expensive items are split
/// by output rows — GPTQ rows are independent given H — until every rank has work or no split
/// would shorten the longest item. Every rank computes the same assignment from the same inputs,
/// so it costs no communication.
public struct SolveAssignment: Sendable, Equatable {
    /// One linear to quantize: its name and `(rows, columns)` = `(out, in)` features.
    public struct Linear: Sendable, Equatable {
        public var name: String
        public var rows: Int
        public var columns: Int
        /// False when its rows must be solved together (a per-tensor scale spans them all).
        public var splittable: Bool

        public init(name: String, rows: Int, columns: Int, splittable: Bool = true) {
            (self.name, self.rows, self.columns, self.splittable) = (name, rows, columns, splittable)
        }
    }

    /// A block of output rows of one linear, solved by `owner`.
    public struct Item: Sendable, Equatable {
        public var name: String
        public var rows: Range<Int>
        public var columns: Int
        public var owner: Int

        /// Estimated flops of this item's solve.
        public var cost: Double { SolveAssignment.cost(rows: rows.count, columns: columns) }
    }

    /// What a solve costs: GPTQ's Hessian work, or a pass over the weight's elements (RTN, HQQ,
    /// FP8: no Hessian, cost ∝ rows·columns), so dealing balances the work the solver really does.
    public enum CostModel: Sendable, Equatable {
        case hessianSolve, elementwise

        /// Estimated work of solving `rows` output rows of a `columns`-wide linear.
        public func cost(rows: Int, columns: Int) -> Double {
            switch self {
            case .hessianSolve: return SolveAssignment.cost(rows: rows, columns: columns)
            case .elementwise: return Double(rows) * Double(columns)
            }
        }
    }

    /// Items in a fixed order (linear order, then row order): the order of every exchange.
    public let items: [Item]
    public let ranks: Int
    public let costModel: CostModel

    /// Estimated flops of solving `rows` output rows against a `columns`-wide Hessian.
    public static func cost(rows: Int, columns: Int) -> Double {
        let c = Double(columns)
        return c * c * c / 3 + c * c * Double(rows)
    }

    /// Rows below which a split is not worth its repeated Cholesky work.
    public static let minimumRowsPerItem = 16

    /// Deals `linears` to `ranks` ranks.
    public init(linears: [Linear], ranks: Int, costModel: CostModel = .hessianSolve) {
        precondition(ranks >= 1, "at least one rank")
        self.ranks = ranks
        self.costModel = costModel
        // Pieces: (linear index, rows). Split the costliest piece in two while ranks would idle.
        var pieces: [(linear: Int, rows: Range<Int>)] = linears.indices.map { ($0, 0..<linears[$0].rows) }
        while pieces.count < ranks {
            let candidates = pieces.indices.filter {
                pieces[$0].rows.count >= 2 * Self.minimumRowsPerItem && linears[pieces[$0].linear].splittable
            }
            guard let i = candidates.max(by: { a, b in
                costModel.cost(rows: pieces[a].rows.count, columns: linears[pieces[a].linear].columns)
                    < costModel.cost(rows: pieces[b].rows.count, columns: linears[pieces[b].linear].columns)
            }) else { break }
            let r = pieces[i].rows, middle = r.lowerBound + r.count / 2
            pieces[i].rows = r.lowerBound..<middle
            pieces.insert((pieces[i].linear, middle..<r.upperBound), at: i + 1)
        }
        // LPT: costliest first (ties by position, so the order is the same on every rank).
        let order = pieces.indices.sorted { a, b in
            let ca = costModel.cost(rows: pieces[a].rows.count, columns: linears[pieces[a].linear].columns)
            let cb = costModel.cost(rows: pieces[b].rows.count, columns: linears[pieces[b].linear].columns)
            return ca != cb ? ca > cb : a < b
        }
        var load = [Double](repeating: 0, count: ranks)
        var owners = [Int](repeating: 0, count: pieces.count)
        for i in order {
            let rank = load.indices.min { load[$0] != load[$1] ? load[$0] < load[$1] : $0 < $1 }!
            owners[i] = rank
            load[rank] += costModel.cost(rows: pieces[i].rows.count, columns: linears[pieces[i].linear].columns)
        }
        items = pieces.indices.map { i in
            Item(name: linears[pieces[i].linear].name, rows: pieces[i].rows, columns: linears[pieces[i].linear].columns,
                 owner: owners[i])
        }
    }

    /// The items `rank` solves.
    public func items(of rank: Int) -> [Item] { items.filter { $0.owner == rank } }

    /// Ranks that solve some rows of `name`, ascending.
    public func owners(of name: String) -> [Int] {
        Array(Set(items.filter { $0.name == name }.map(\.owner))).sorted()
    }

    /// The rank that writes `name` to its shard: its lowest owner.
    public func writer(of name: String) -> Int { owners(of: name).first ?? 0 }

    /// Estimated flops per rank (what the assignment balanced).
    public var loads: [Double] {
        var load = [Double](repeating: 0, count: ranks)
        for item in items { load[item.owner] += costModel.cost(rows: item.rows.count, columns: item.columns) }
        return load
    }
}
