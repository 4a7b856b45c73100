//! Parquet tables as LeRobot's files need them: whole columns of integers, floats, strings,
//! fixed-length float vectors (`observation.state`) and string lists (an episode's `tasks`),
//! written and read through the parquet crate's low-level column API (no Arrow, to keep the build
//! lean). Lists use the standard three-level LIST layout pyarrow writes, so pyarrow, pandas and
//! Hugging Face `datasets` read the files as ordinary list columns.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result, bail, ensure};
use parquet::basic::{Compression, LogicalType, Repetition, Type as PhysicalType};
use parquet::column::reader::ColumnReader;
use parquet::data_type::{ByteArray, ByteArrayType, DoubleType, FloatType, Int64Type};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::Type;

/// One column's values, all rows.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// `int64`.
    Int64(Vec<i64>),
    /// `float32`.
    Float32(Vec<f32>),
    /// `float64`.
    Float64(Vec<f64>),
    /// UTF-8 strings.
    Text(Vec<String>),
    /// A list of `dim` float32 per row, stored flat (row-major).
    Float32List {
        /// Values per row.
        dim: usize,
        /// `rows * dim` values.
        values: Vec<f32>,
    },
    /// A list of strings per row.
    TextList(Vec<Vec<String>>),
}

impl Column {
    /// Rows in the column.
    pub fn rows(&self) -> usize {
        match self {
            Column::Int64(v) => v.len(),
            Column::Float32(v) => v.len(),
            Column::Float64(v) => v.len(),
            Column::Text(v) => v.len(),
            Column::Float32List { dim, values } => values.len() / (*dim).max(1),
            Column::TextList(v) => v.len(),
        }
    }
}

/// Named columns of equal length, plus the file's key-value metadata.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Table {
    /// Columns in file order.
    pub columns: Vec<(String, Column)>,
    /// Key-value metadata of the file (e.g. pandas' index description).
    pub metadata: Vec<(String, String)>,
}

impl Table {
    /// Rows in the table (0 without columns).
    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, column)| column.rows())
    }

    /// The column called `name`; the error names the column.
    pub fn column(&self, name: &str) -> Result<&Column> {
        self.columns
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, column)| column)
            .with_context(|| format!("no column `{name}`"))
    }

    /// The `int64` column called `name`.
    pub fn int64(&self, name: &str) -> Result<&[i64]> {
        match self.column(name)? {
            Column::Int64(values) => Ok(values),
            other => bail!("column `{name}` is not int64 but {}", kind(other)),
        }
    }

    /// The `float64` column called `name`.
    pub fn float64(&self, name: &str) -> Result<&[f64]> {
        match self.column(name)? {
            Column::Float64(values) => Ok(values),
            other => bail!("column `{name}` is not float64 but {}", kind(other)),
        }
    }

    /// The `float32` column called `name`.
    pub fn float32(&self, name: &str) -> Result<&[f32]> {
        match self.column(name)? {
            Column::Float32(values) => Ok(values),
            other => bail!("column `{name}` is not float32 but {}", kind(other)),
        }
    }

    /// The string column called `name`.
    pub fn text(&self, name: &str) -> Result<&[String]> {
        match self.column(name)? {
            Column::Text(values) => Ok(values),
            other => bail!("column `{name}` is not a string column but {}", kind(other)),
        }
    }

    /// The float32 list column called `name`, which must hold `dim` values per row.
    pub fn float32_list(&self, name: &str, dim: usize) -> Result<&[f32]> {
        match self.column(name)? {
            Column::Float32List { dim: found, values } if *found == dim => Ok(values),
            Column::Float32List { dim: found, .. } => bail!("column `{name}` holds {found} values per row, not {dim}"),
            other => bail!("column `{name}` is not a float32 list but {}", kind(other)),
        }
    }

    /// The string list column called `name`.
    pub fn text_list(&self, name: &str) -> Result<&[Vec<String>]> {
        match self.column(name)? {
            Column::TextList(values) => Ok(values),
            other => bail!("column `{name}` is not a string list but {}", kind(other)),
        }
    }
}

fn kind(column: &Column) -> &'static str {
    match column {
        Column::Int64(_) => "int64",
        Column::Float32(_) => "float32",
        Column::Float64(_) => "float64",
        Column::Text(_) => "string",
        Column::Float32List { .. } => "a float32 list",
        Column::TextList(_) => "a string list",
    }
}

fn leaf(name: &str, physical: PhysicalType, repetition: Repetition) -> Result<Type> {
    let logical = (physical == PhysicalType::BYTE_ARRAY).then_some(LogicalType::String);
    Ok(Type::primitive_type_builder(name, physical).with_repetition(repetition).with_logical_type(logical).build()?)
}

/// `required group name (LIST) { repeated group list { required <element> element; } }`.
fn list(name: &str, element: PhysicalType) -> Result<Type> {
    let repeated = Type::group_type_builder("list")
        .with_repetition(Repetition::REPEATED)
        .with_fields(vec![Arc::new(leaf("element", element, Repetition::REQUIRED)?)])
        .build()?;
    Ok(Type::group_type_builder(name)
        .with_repetition(Repetition::REQUIRED)
        .with_logical_type(Some(LogicalType::List))
        .with_fields(vec![Arc::new(repeated)])
        .build()?)
}

fn field(name: &str, column: &Column) -> Result<Type> {
    match column {
        Column::Int64(_) => leaf(name, PhysicalType::INT64, Repetition::REQUIRED),
        Column::Float32(_) => leaf(name, PhysicalType::FLOAT, Repetition::REQUIRED),
        Column::Float64(_) => leaf(name, PhysicalType::DOUBLE, Repetition::REQUIRED),
        Column::Text(_) => leaf(name, PhysicalType::BYTE_ARRAY, Repetition::REQUIRED),
        Column::Float32List { .. } => list(name, PhysicalType::FLOAT),
        Column::TextList(_) => list(name, PhysicalType::BYTE_ARRAY),
    }
}

/// Repetition levels of lists with these lengths: 0 starts a row, 1 continues it.
fn list_levels(lengths: impl Iterator<Item = usize>) -> Vec<i16> {
    lengths.flat_map(|n| (0..n).map(|i| i16::from(i > 0))).collect()
}

/// Writes `table` to `path` (Snappy-compressed, one row group).
pub fn write(path: &Path, table: &Table) -> Result<()> {
    write_table(path, table).with_context(|| format!("cannot write {}", path.display()))
}

fn write_table(path: &Path, table: &Table) -> Result<()> {
    let rows = table.rows();
    for (name, column) in &table.columns {
        ensure!(column.rows() == rows, "column `{name}` has {} rows, the first column {rows}", column.rows());
        if let Column::Float32List { dim, values } = column {
            ensure!(
                *dim > 0 && values.len() == rows * dim,
                "column `{name}`: {} values for {rows}×{dim}",
                values.len()
            );
        }
    }
    let fields =
        table.columns.iter().map(|(name, column)| field(name, column).map(Arc::new)).collect::<Result<Vec<_>>>()?;
    let schema = Type::group_type_builder("schema").with_fields(fields).build()?;
    let metadata = table.metadata.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())).collect();
    let properties =
        WriterProperties::builder().set_compression(Compression::SNAPPY).set_key_value_metadata(Some(metadata)).build();
    let file = File::create(path)?;
    let mut writer = SerializedFileWriter::new(file, Arc::new(schema), Arc::new(properties))?;
    let mut row_group = writer.next_row_group()?;
    for (_, column) in &table.columns {
        let mut column_writer = row_group.next_column()?.context("the schema has a leaf per column")?;
        match column {
            Column::Int64(values) => {
                column_writer.typed::<Int64Type>().write_batch(values, None, None)?;
            }
            Column::Float32(values) => {
                column_writer.typed::<FloatType>().write_batch(values, None, None)?;
            }
            Column::Float64(values) => {
                column_writer.typed::<DoubleType>().write_batch(values, None, None)?;
            }
            Column::Text(values) => {
                let bytes: Vec<ByteArray> = values.iter().map(|s| ByteArray::from(s.as_str())).collect();
                column_writer.typed::<ByteArrayType>().write_batch(&bytes, None, None)?;
            }
            Column::Float32List { dim, values } => {
                let definition = vec![1; values.len()];
                let repetition = list_levels(std::iter::repeat_n(*dim, rows));
                column_writer.typed::<FloatType>().write_batch(values, Some(&definition), Some(&repetition))?;
            }
            Column::TextList(lists) => {
                ensure!(lists.iter().all(|l| !l.is_empty()), "empty string lists are not supported");
                let bytes: Vec<ByteArray> = lists.iter().flatten().map(|s| ByteArray::from(s.as_str())).collect();
                let definition = vec![1; bytes.len()];
                let repetition = list_levels(lists.iter().map(Vec::len));
                column_writer.typed::<ByteArrayType>().write_batch(&bytes, Some(&definition), Some(&repetition))?;
            }
        }
        column_writer.close()?;
    }
    row_group.close()?;
    writer.close()?;
    Ok(())
}

/// Reads a table written by [`write`] (or by pyarrow with the same column kinds); errors name the file.
pub fn read(path: &Path) -> Result<Table> {
    read_table(path).with_context(|| format!("cannot read parquet file {}", path.display()))
}

fn read_table(path: &Path) -> Result<Table> {
    let reader = SerializedFileReader::new(File::open(path)?)?;
    let file_metadata = reader.metadata().file_metadata();
    let schema = file_metadata.schema_descr();
    let metadata = file_metadata
        .key_value_metadata()
        .map(|kv| kv.iter().map(|kv| (kv.key.clone(), kv.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default();
    let mut columns: Vec<(String, Column)> = Vec::with_capacity(schema.num_columns());
    for index in 0..schema.num_columns() {
        let descriptor = schema.column(index);
        let name = descriptor.path().parts()[0].clone();
        let is_list = descriptor.max_rep_level() > 0;
        let mut parts: Vec<Column> = Vec::new();
        for group in 0..reader.num_row_groups() {
            let row_group = reader.get_row_group(group)?;
            let rows = row_group.metadata().num_rows() as usize;
            let (mut definition, mut repetition) = (Vec::new(), Vec::new());
            let levels = if is_list { Some((&mut definition, &mut repetition)) } else { None };
            let part = read_column(row_group.get_column_reader(index)?, rows, levels, &name)?;
            parts.push(part);
        }
        columns.push((name, concatenate(parts)?));
    }
    Ok(Table { columns, metadata })
}

/// One row group's values of a column; `levels` buffers for list columns.
fn read_column(
    reader: ColumnReader,
    rows: usize,
    levels: Option<(&mut Vec<i16>, &mut Vec<i16>)>,
    name: &str,
) -> Result<Column> {
    let (definition, repetition) = match levels {
        Some((d, r)) => (Some(d), Some(r)),
        None => (None, None),
    };
    let list_lengths = |repetition: Option<&mut Vec<i16>>| -> Vec<usize> {
        let mut lengths = Vec::with_capacity(rows);
        for level in repetition.map(|r| r.as_slice()).unwrap_or_default() {
            match (level, lengths.last_mut()) {
                (1, Some(n)) => *n += 1,
                _ => lengths.push(1),
            }
        }
        lengths
    };
    let is_list = repetition.is_some();
    let column = match reader {
        ColumnReader::Int64ColumnReader(mut r) if !is_list => {
            let mut values = Vec::with_capacity(rows);
            r.read_records(rows, definition, repetition, &mut values)?;
            Column::Int64(values)
        }
        ColumnReader::FloatColumnReader(mut r) => {
            let mut values = Vec::with_capacity(rows);
            if is_list {
                let repetition = repetition.expect("list columns have repetition levels");
                r.read_records(rows, definition, Some(&mut *repetition), &mut values)?;
                let lengths = list_lengths(Some(repetition));
                let dim = lengths.first().copied().unwrap_or(1);
                ensure!(lengths.iter().all(|&n| n == dim), "column `{name}` has lists of different lengths");
                Column::Float32List { dim, values }
            } else {
                r.read_records(rows, definition, repetition, &mut values)?;
                Column::Float32(values)
            }
        }
        ColumnReader::DoubleColumnReader(mut r) if !is_list => {
            let mut values = Vec::with_capacity(rows);
            r.read_records(rows, definition, repetition, &mut values)?;
            Column::Float64(values)
        }
        ColumnReader::ByteArrayColumnReader(mut r) => {
            let mut values: Vec<ByteArray> = Vec::with_capacity(rows);
            let text = |b: &ByteArray| -> Result<String> {
                Ok(std::str::from_utf8(b.data()).with_context(|| format!("column `{name}` is not UTF-8"))?.to_owned())
            };
            if is_list {
                let repetition = repetition.expect("list columns have repetition levels");
                r.read_records(rows, definition, Some(&mut *repetition), &mut values)?;
                let mut strings = values.iter().map(text);
                let mut lists = Vec::with_capacity(rows);
                for length in list_lengths(Some(repetition)) {
                    lists.push((&mut strings).take(length).collect::<Result<Vec<_>>>()?);
                }
                Column::TextList(lists)
            } else {
                r.read_records(rows, definition, repetition, &mut values)?;
                Column::Text(values.iter().map(text).collect::<Result<_>>()?)
            }
        }
        _ => bail!("column `{name}` has a type this reader does not handle"),
    };
    ensure!(column.rows() == rows, "column `{name}`: {} rows read of {rows}", column.rows());
    Ok(column)
}

fn concatenate(parts: Vec<Column>) -> Result<Column> {
    let mut parts = parts.into_iter();
    let Some(mut whole) = parts.next() else {
        bail!("no row groups");
    };
    for part in parts {
        match (&mut whole, part) {
            (Column::Int64(a), Column::Int64(b)) => a.extend(b),
            (Column::Float32(a), Column::Float32(b)) => a.extend(b),
            (Column::Float64(a), Column::Float64(b)) => a.extend(b),
            (Column::Text(a), Column::Text(b)) => a.extend(b),
            (Column::Float32List { dim, values }, Column::Float32List { dim: d, values: b }) if *dim == d => {
                values.extend(b)
            }
            (Column::TextList(a), Column::TextList(b)) => a.extend(b),
            _ => bail!("row groups disagree on a column's type"),
        }
    }
    Ok(whole)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_column_kind_round_trips() {
        let table = Table {
            columns: vec![
                ("index".into(), Column::Int64(vec![0, 1, 2])),
                ("timestamp".into(), Column::Float32(vec![0.0, 1.0 / 30.0, 2.0 / 30.0])),
                ("to_timestamp".into(), Column::Float64(vec![0.5, f64::MIN_POSITIVE, -3.0])),
                ("task".into(), Column::Text(vec!["open the drawer".into(), "".into(), "é ✓".into()])),
                (
                    "observation.state".into(),
                    Column::Float32List { dim: 2, values: vec![1.0, -0.0, 3.5, 4.0, 5.0, 6.0] },
                ),
                (
                    "tasks".into(),
                    Column::TextList(vec![vec!["a".into()], vec!["b".into(), "c".into()], vec!["d".into()]]),
                ),
            ],
            metadata: vec![("pandas".into(), "{}".into())],
        };
        let dir = std::env::temp_dir().join(format!("vlasim-table-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("t.parquet");
        write(&path, &table).expect("write");
        let back = read(&path).expect("read");
        assert_eq!(back, table);
        std::fs::remove_dir_all(&dir).expect("clean up");
    }
}
